/* The fp32 FMA peak loop at the AVX2 level: 12 independent chains of 8-lane fused
 * multiply-adds, enough to cover the FMA latency on every x86 core of the last decade. Compiled
 * with -mavx2 -mfma (bench/CMakeLists.txt) and called only when the CPU has AVX2 and FMA. */
#include <immintrin.h>

#include "bench_peak.h"

double bench_peak_loop_avx2(long iters)
{
    __m256 a[12];
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    bench_peak_sink(out[0]);
    return (double)iters * 12 * 8 * 2;
}
