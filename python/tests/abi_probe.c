/* Prints the sizes and field offsets of the public structs as this C compiler lays them out, one
 * "struct.field offset" line each, so that the Python tests can compare them with the ctypes
 * mirrors in fused_attention/_library.py. Built by python/CMakeLists.txt. */
#include <stddef.h>
#include <stdio.h>

#include <fused_attention.h>

#define FIELD(type, field) printf(#type "." #field " %zu\n", offsetof(type, field))

#if FAS_VERSION_MAJOR == 0 && FAS_VERSION_MINOR < 2
/* Before 0.2.0 the header lacks the appended fields; this is the 0.2.0 layout they will have. */
typedef struct options_0_2 {
    size_t struct_size;
    int num_threads;
    bool has_seed;
    uint64_t seed;
    uint64_t offset;
    bool drop_mask_is_input;
    fas_impl impl;
    int precision; /* fas_precision, an enum */
    int64_t batch_offset;
    int64_t head_offset;
    int64_t global_num_heads;
} options_0_2;
#define OPTIONS options_0_2
#else
#define OPTIONS fas_options
#endif

int main(void)
{
    printf("fas_tensor.sizeof %zu\n", sizeof(fas_tensor));
    FIELD(fas_tensor, data);
    FIELD(fas_tensor, dtype);
    FIELD(fas_tensor, format);
    FIELD(fas_tensor, ndim);
    FIELD(fas_tensor, dims);
    /* the fields the installed header has, from the header itself */
    FIELD(fas_options, struct_size);
    FIELD(fas_options, num_threads);
    FIELD(fas_options, has_seed);
    FIELD(fas_options, seed);
    FIELD(fas_options, offset);
    FIELD(fas_options, drop_mask_is_input);
    FIELD(fas_options, impl);
    printf("fas_options.header_sizeof %zu\n", sizeof(fas_options));
    /* the full 0.2.0 layout */
    printf("fas_options.sizeof %zu\n", sizeof(OPTIONS));
    printf("fas_options.precision %zu\n", offsetof(OPTIONS, precision));
    printf("fas_options.batch_offset %zu\n", offsetof(OPTIONS, batch_offset));
    printf("fas_options.head_offset %zu\n", offsetof(OPTIONS, head_offset));
    printf("fas_options.global_num_heads %zu\n", offsetof(OPTIONS, global_num_heads));
#if FAS_VERSION_MAJOR > 0 || FAS_VERSION_MINOR >= 3
    FIELD(fas_options, gemm);
#endif
    return 0;
}
