// The public header from C++: it must compile as C++11 with -Wall -Wextra -Wpedantic -Werror,
// give C linkage (this links against the shared library by the C names) and work for a C++
// caller: options initialised inline, a small fas_format_cast round trip, an error path.
#include <fused_attention.h>

#include <cstdio>

int main()
{
    int failures = 0;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "header_cxx: check failed: %s (line %d)\n", #cond, __LINE__);     \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

    fas_options options;
    fas_options_init(&options);
    CHECK(options.struct_size == sizeof(fas_options));
    CHECK(options.impl == FAS_IMPL_AUTO);
    CHECK(options.num_threads == 0 && !options.has_seed && !options.drop_mask_is_input);

    // fp32 [3, 5] ND -> fp16 FRACTAL_NZ -> fp32 ND: exact for these small integers.
    float src[15];
    float back[15];
    for (int i = 0; i < 15; i++) {
        src[i] = static_cast<float>(i - 7);
        back[i] = -100.0f;
    }
    fas_tensor tsrc = {src, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {3, 5}};
    fas_tensor tnz = {nullptr, FAS_DTYPE_FLOAT16, FAS_FORMAT_FRACTAL_NZ, 2, {3, 5}};
    fas_tensor tback = {back, FAS_DTYPE_FLOAT, FAS_FORMAT_ND, 2, {3, 5}};
    CHECK(fas_tensor_bytes(&tnz) == 16 * 16 * sizeof(uint16_t));
    uint16_t nz[16 * 16];
    tnz.data = nz;
    CHECK(fas_format_cast(&tsrc, &tnz) == FAS_OK);
    CHECK(fas_format_cast(&tnz, &tback) == FAS_OK);
    for (int i = 0; i < 15; i++) CHECK(back[i] == src[i]);
    CHECK(nz[0] == fas_float_to_half(-7.0f));  // element (0, 0)
    CHECK(nz[16] == fas_float_to_half(-2.0f)); // element (1, 0): next 16-wide row of the fractal

    // An error comes back as a status and a sentence, not an exception or an abort.
    CHECK(fas_format_cast(nullptr, &tback) == FAS_ERR_NULL_POINTER);
    CHECK(fas_last_error()[0] != '\0');

    if (failures == 0)
        std::printf("header_cxx: fused-attention %s (%s) from C++ OK\n", fas_version_string(),
                    fas_status_string(FAS_OK));
    return failures == 0 ? 0 : 1;
}
