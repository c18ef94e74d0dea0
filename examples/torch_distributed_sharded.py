"""Heads and batches of one fused-attention call split over processes with torch.distributed.

Start it with torchrun (gloo backend, CPU tensors)::

    torchrun --nproc_per_node 2 examples/torch_distributed_sharded.py            # B N S D 5 3 128 64
    python3 -m torch.distributed.run --nproc_per_node 3 examples/torch_distributed_sharded.py \
        --shape 4,5,96,40 --keep-prob 0.8

What it does (docs/design.md §10, "Scaling out"):

1. Rank 0 makes the inputs (q, k, v [B, N, S, D], an additive mask [B, 1, S, S], the gradient of
   the output) and a dropout seed, and broadcasts them.
2. The B*N heads, in order b*N + n, are cut into one contiguous range per rank, so both batches
   and heads are split, unevenly. A range is one to three rectangles (batches x heads); each is
   one call on its slice of the tensors, told where it sits in the whole call
   (``batch_offset``, ``head_offset``, ``global_num_heads``) and given the shared ``seed``:
   - the materialising forward with autograd (inputs that require grad), then ``backward`` with
     the rectangle's slice of the output gradient: context, dQ, dK, dV;
   - ``npu_fused_attention_score_fwd``: the softmax output and the drop mask;
   - the streaming forward under ``torch.no_grad()``.
3. Rank 0 gathers every rank's rectangles, makes the same calls on the whole tensors in one
   process, and compares each output byte for byte. Any difference is an error (exit 1 on every
   rank).

The streaming and materialising forwards are compared each with itself: they agree within the
accuracy contract, not bitwise (docs/semantics.md §2), so a shard must take the same path as the
call it stands for.

The package must be importable: ``pip install ./python``, or a CMake build with
``FUSED_ATTENTION_LIBRARY=build/libfused_attention.so.0 PYTHONPATH=python``.
"""

import argparse
import sys

import torch
import torch.distributed as dist

import fused_attention
import fused_attention.torch_npu as torch_npu

OUTPUTS = ("context", "query_dx", "key_dw", "value_dw", "softmax_output", "drop_mask",
           "streaming_context")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="5,3,128,64", help="B,N,S,D (default 5,3,128,64)")
    p.add_argument("--keep-prob", type=float, default=0.9, help="dropout keep probability")
    p.add_argument("--scale", type=float, default=0.125)
    p.add_argument("--gemm", default="auto", help="matrix engine: auto, builtin, blas or amx")
    args = p.parse_args()
    args.shape = tuple(int(x) for x in args.shape.split(","))
    if len(args.shape) != 4 or min(args.shape) < 1:
        p.error("--shape takes four positive integers B,N,S,D")
    return args


def rectangles(first, last, n_heads):
    """The flat head range [first, last) (index b*N + n) as rectangles (b0, b1, h0, h1)."""
    out = []
    i = first
    while i < last:
        b, h = divmod(i, n_heads)
        if h == 0 and last - i >= n_heads:  # whole batches
            nb = (last - i) // n_heads
            out.append((b, b + nb, 0, n_heads))
            i += nb * n_heads
        else:  # the part of one batch
            h1 = min(n_heads, h + last - i)
            out.append((b, b + 1, h, h1))
            i += h1 - h
    return out


def run(q, k, v, mask, grad, args, seed, place=None):
    """The calls on one rectangle (place = (b0, h0, N)) or on the whole tensors (place None).
    Returns the outputs as [nb, nh, ...] tensors keyed by OUTPUTS."""
    b, n, s, d = q.shape
    kw = dict(gemm=args.gemm, seed=seed)
    if place is not None:
        kw.update(batch_offset=place[0], head_offset=place[1], global_num_heads=place[2])
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    context = torch_npu.npu_fused_attention_score(*leaves, mask, args.scale, args.keep_prob, **kw)
    context.backward(grad)
    _, probs, drop_mask = torch_npu.npu_fused_attention_score_fwd(q, k, v, mask, args.scale,
                                                                  args.keep_prob, **kw)
    with torch.no_grad():
        streaming = torch_npu.npu_fused_attention_score(q, k, v, mask, args.scale,
                                                        args.keep_prob, **kw)

    def heads(ctx):  # [b*S, n*D] -> [b, n, S, D]
        return ctx.detach().reshape(b, s, n, d).permute(0, 2, 1, 3).contiguous()

    return {"context": heads(context), "query_dx": leaves[0].grad,
            "key_dw": leaves[1].grad, "value_dw": leaves[2].grad, "softmax_output": probs,
            "drop_mask": drop_mask, "streaming_context": heads(streaming)}


def main():
    args = parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    B, N, S, D = args.shape

    # 1. inputs and seed from rank 0
    q, k, v = (torch.empty(B, N, S, D, dtype=torch.float16) for _ in range(3))
    mask = torch.empty(B, 1, S, S, dtype=torch.float16)
    grad = torch.empty(B * S, N * D, dtype=torch.float16)
    seed = torch.zeros(1, dtype=torch.int64)
    if rank == 0:
        g = torch.Generator().manual_seed(2024)
        for t in (q, k, v):
            t.copy_(torch.rand(t.shape, generator=g) * 2 - 1)
        mask.copy_(torch.rand(mask.shape, generator=g) * -4)
        grad.copy_(torch.rand(grad.shape, generator=g) * 2 - 1)
        seed[0] = int(torch.randint(0, 2**62, (1,), generator=g))
    for t in (q, k, v, mask, grad, seed):
        dist.broadcast(t, src=0)
    seed = int(seed[0])

    # 2. this rank's heads, as rectangles
    first, last = rank * B * N // world, (rank + 1) * B * N // world
    mine = []
    grad4 = grad.reshape(B, S, N, D)
    for b0, b1, h0, h1 in rectangles(first, last, N):
        sl = (slice(b0, b1), slice(h0, h1))
        g = grad4[b0:b1, :, h0:h1, :].reshape((b1 - b0) * S, (h1 - h0) * D)
        out = run(q[sl].contiguous(), k[sl].contiguous(), v[sl].contiguous(),
                  mask[b0:b1].contiguous(), g.contiguous(), args, seed, (b0, h0, N))
        mine.append(((b0, b1, h0, h1), out))
    print("rank %d of %d: heads %d..%d as %s (%s, gemm %s)" % (
        rank, world, first, last - 1,
        " + ".join("b%d:%d x n%d:%d" % r for r, _ in mine) or "nothing",
        fused_attention.__version__, fused_attention.gemm_engine()), flush=True)

    # 3. gather on rank 0, compare with the one-process call
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    ok = torch.ones(1, dtype=torch.int64)
    if rank == 0:
        whole = run(q, k, v, mask, grad, args, seed)
        assembled = {name: torch.zeros_like(whole[name]) for name in OUTPUTS}
        covered = torch.zeros(B, N, dtype=torch.int64)
        for shards in gathered:
            for (b0, b1, h0, h1), out in shards:
                covered[b0:b1, h0:h1] += 1
                for name in OUTPUTS:
                    assembled[name][b0:b1, h0:h1] = out[name]
        if not bool((covered == 1).all()):
            print("FAILED: the shards do not cover every head exactly once", flush=True)
            ok[0] = 0
        for name in OUTPUTS:
            a, w = assembled[name], whole[name]
            same = a.shape == w.shape and a.dtype == w.dtype and bytes(
                a.contiguous().view(torch.uint8).numpy()) == bytes(
                w.contiguous().view(torch.uint8).numpy())
            print("%-18s %-22s %s" % (name, "x".join(map(str, w.shape)),
                                      "identical" if same else "DIFFERS"), flush=True)
            if not same:
                ok[0] = 0
        kept = float(whole["drop_mask"].float().mean())
        print("%s: %d ranks, B N S D = %d %d %d %d, keep_prob %g (kept %.3f), seed %d: %s"
              % ("PASSED" if ok[0] else "FAILED", world, B, N, S, D, args.keep_prob, kept, seed,
                 "every output byte for byte the one-process call's" if ok[0]
                 else "outputs differ from the one-process call"), flush=True)
    dist.broadcast(ok, src=0)
    dist.destroy_process_group()
    return 0 if ok[0] else 1


if __name__ == "__main__":
    sys.exit(main())
