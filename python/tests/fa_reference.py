"""Independent fp64 numpy references for the tests, written from docs/semantics.md (never from the
library's output), and the accuracy-contract check.

Forward, per (b, n):  A = Q.K^T;  X = A*scale + mask;  P = softmax_rows(X);
                      Pd = P*M/keep_prob;  C = Pd.V (Pd^T.V with bmm_score_transpose_a);
                      out[b*Sq + i, n*Dv + d] = C[b, n, i, d].
Backward:             dV = Pd^T.dO;  dP = (dO.V^T)*G;  dX = P*(dP - rowsum(dP*P));
                      dA = scale*dX;  dQ = dA.K;  dK = dA^T.Q   (G = M/keep_prob, Pd = P*G).
"""

import numpy as np

F64 = np.float64


def _last2(x, transposed):
    x = np.asarray(x, dtype=F64)
    return np.swapaxes(x, -1, -2) if transposed else x


def softmax_rows(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def forward(q, k, v, mask, scale, keep_prob=1.0, drop_mask=None, query_transpose=False,
            key_transpose=False, transpose_a=False, transpose_b=False):
    """Returns (attention_score [B*Sq, N*Dv], P [B, N, Sq, Sk]) in fp64."""
    q = _last2(q, query_transpose)  # [B, N, Sq, D]
    k = _last2(k, key_transpose)  # [B, N, Sk, D]
    v = _last2(v, transpose_b)  # [B, N, Sk, Dv]
    x = np.einsum("bnid,bnjd->bnij", q, k) * float(scale)
    if mask is not None:
        x = x + np.asarray(mask, dtype=F64)  # every accepted mask form broadcasts
    p = softmax_rows(x)
    pd = p if drop_mask is None else p * np.asarray(drop_mask, dtype=F64) / keep_prob
    if transpose_a:
        pd = np.swapaxes(pd, -1, -2)
    c = np.einsum("bnij,bnjd->bnid", pd, v)
    b, n, sq, dv = c.shape
    return c.transpose(0, 2, 1, 3).reshape(b * sq, n * dv), p


def to_grad_layout(x):
    """[B, N, S, D] -> torch_npu's _grad layout [B*S, N*D]."""
    b, n, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b * s, n * d)


def backward(grad_output, probs, q, k, v, drop_mask, scale, keep_prob, query_transpose=False,
             key_transpose=False, value_transpose=False, dx_transpose=False):
    """Returns (dQ, dK, dV) in the 2-D _grad layout, fp64, from the given probabilities."""
    p = np.asarray(probs, dtype=F64)
    b, n, sq, sk = p.shape
    q = _last2(q, query_transpose)
    k = _last2(k, key_transpose)
    v = _last2(v, value_transpose)
    dv_dim = v.shape[-1]
    g2 = np.asarray(grad_output, dtype=F64)
    if dx_transpose:
        g2 = g2.T
    do = g2.reshape(b, sq, n, dv_dim).transpose(0, 2, 1, 3)
    g = np.ones_like(p) if drop_mask is None else np.asarray(drop_mask, dtype=F64) / keep_prob
    pd = p * g
    dv = np.einsum("bnij,bnid->bnjd", pd, do)
    dp = np.einsum("bnid,bnjd->bnij", do, v) * g
    dx = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    da = float(scale) * dx
    dq = np.einsum("bnij,bnjd->bnid", da, k)
    dk = np.einsum("bnij,bnid->bnjd", da, q)
    return to_grad_layout(dq), to_grad_layout(dk), to_grad_layout(dv)


def assert_contract(got, ref, what):
    """The accuracy contract: every element |got - ref| <= 2^-12 * max|ref| + 2^-9 * |ref|."""
    got = np.asarray(got, dtype=F64)
    ref = np.asarray(ref, dtype=F64)
    assert got.shape == ref.shape, "%s: shape %s, reference %s" % (what, got.shape, ref.shape)
    assert np.isfinite(got).all(), "%s: non-finite values" % what
    err = np.abs(got - ref)
    bound = 2.0**-12 * np.abs(ref).max(initial=0.0) + 2.0**-9 * np.abs(ref)
    excess = err - bound
    if (excess > 0).any():
        idx = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(
            "%s: %d of %d elements outside the contract; worst at %s: got %.8g, reference "
            "%.8g, |error| %.3g > bound %.3g" % (what, int((excess > 0).sum()), excess.size,
                                                 tuple(int(i) for i in idx), got[idx], ref[idx],
                                                 err[idx], bound[idx]))


def nz_layout(a):
    """ND -> FRACTAL_NZ storage, built from the definition: pad [..., M, N] to multiples of 16,
    cut into 16x16 fractals, order them column-block-major, each fractal row-major."""
    a = np.asarray(a)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(-1, 1)
    *batch, m, n = a.shape
    m1, n1 = -(-m // 16), -(-n // 16)
    padded = np.zeros(tuple(batch) + (m1 * 16, n1 * 16), dtype=a.dtype)
    padded[..., :m, :n] = a
    blocks = padded.reshape(tuple(batch) + (m1, 16, n1, 16))
    nb = len(batch)
    order = tuple(range(nb)) + (nb + 2, nb, nb + 1, nb + 3)  # -> [..., n1, m1, 16m, 16n]
    return np.ascontiguousarray(blocks.transpose(order))
