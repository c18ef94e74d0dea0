/* The fp32 FMA peak loop at the AVX-512 level: 12 independent chains of 16-lane fused
 * multiply-adds. Compiled with -mavx512f (bench/CMakeLists.txt) and called only when the CPU
 * has AVX-512. */
#include <immintrin.h>

#include "bench_peak.h"

double bench_peak_loop_avx512(long iters)
{
    __m512 a[12];
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    bench_peak_sink(_mm512_reduce_add_ps(s));
    return (double)iters * 12 * 16 * 2;
}
