/* The public header is self-contained C11: it is the first and only include here, and this file
 * is compiled with -std=c11 -Wall -Wextra -Wpedantic -Werror (plus the project's warnings). */
#include <fused_attention.h>

_Static_assert(FAS_OK == 0 && FAS_ERR_INTERNAL == 10, "status values are pinned");
_Static_assert(FAS_IMPL_AUTO == 0 && FAS_IMPL_AVX512 == 4 && FAS_IMPL_NEON == 5,
               "fas_impl values are pinned");
_Static_assert(FAS_DTYPE_FLOAT16 == 1 && FAS_FORMAT_FRACTAL_NZ == 29, "ACL ids");

int main(void)
{
    fas_options options;
    fas_options_init(&options);
    return options.struct_size == sizeof options ? 0 : 1;
}
