// A C++ embedding: one forward call on a small problem held in std::vector, checked against a
// case with a known answer (every key equal, so softmax is uniform and each context row is the
// mean of the value rows), and the library's error sentence surfaced as an exception.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <fused_attention.h>

namespace
{

void check(fas_status st)
{
    if (st != FAS_OK)
        throw std::runtime_error(std::string(fas_status_string(st)) + ": " + fas_last_error());
}

fas_tensor view(std::vector<uint16_t> &data, int ndim, std::initializer_list<int64_t> dims)
{
    fas_tensor t{};
    t.data = data.data();
    t.dtype = FAS_DTYPE_FLOAT16;
    t.format = FAS_FORMAT_ND;
    t.ndim = ndim;
    int i = 0;
    for (int64_t d : dims) t.dims[i++] = d;
    return t;
}

} // namespace

int main()
{
    const int64_t B = 2, N = 3, S = 5, D = 4;
    std::vector<uint16_t> q(B * N * S * D), k(q.size()), v(q.size()), out(B * S * N * D);
    for (size_t i = 0; i < q.size(); i++) {
        q[i] = fas_float_to_half(0.25f * static_cast<float>(i % 7));
        k[i] = fas_float_to_half(1.0f);                           // all keys equal
        v[i] = fas_float_to_half(static_cast<float>(i % 11) - 5); // small integers: exact mean
    }
    fas_tensor tq = view(q, 4, {B, N, S, D}), tk = view(k, 4, {B, N, S, D});
    fas_tensor tv = view(v, 4, {B, N, S, D}), to = view(out, 2, {B * S, N * D});
    try {
        check(fused_attention_score(&tq, &tk, &tv, nullptr, 0.125, 1.0, false, false, false, false,
                                    false, false, &to));
        for (int64_t b = 0; b < B; b++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t d = 0; d < D; d++) {
                    double mean = 0;
                    for (int64_t j = 0; j < S; j++)
                        mean += fas_half_to_float(v[((b * N + n) * S + j) * D + d]);
                    mean /= S;
                    for (int64_t i = 0; i < S; i++) {
                        double got = fas_half_to_float(out[(b * S + i) * (N * D) + n * D + d]);
                        if (std::fabs(got - mean) > 1e-3 * (1 + std::fabs(mean))) {
                            std::fprintf(
                                stderr, "context (%lld,%lld,%lld,%lld) = %g, expected %g\n",
                                (long long)b, (long long)n, (long long)i, (long long)d, got, mean);
                            return 1;
                        }
                    }
                }
        // a bad call must come back as the library's sentence, not a crash
        fas_tensor bad = tk;
        bad.dims[3] = 3;
        try {
            check(fused_attention_score(&tq, &bad, &tv, nullptr, 0.125, 1.0, false, false, false,
                                        false, false, false, &to));
            std::fprintf(stderr, "a key of head dim 3 was accepted\n");
            return 1;
        } catch (const std::runtime_error &e) {
            std::printf("expected error: %s\n", e.what());
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    std::printf("fused-attention %s (%s): C++ consumer OK\n", fas_version_string(),
                fas_simd_level());
    return 0;
}
