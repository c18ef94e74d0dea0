#!/usr/bin/env python3
"""Time libfused_attention against other CPU attention implementations, on the same problems.

Compared, each when installed (a missing one is skipped with a sentence saying so):

- this library: ``fused_attention.fused_attention_score`` (the streaming forward), float16
  inputs and output, ``threads=--threads``;
- PyTorch: ``torch.nn.functional.scaled_dot_product_attention``, float32, with
  ``torch.set_num_threads(--threads)``;
- ONNX Runtime: the ``com.microsoft.MultiHeadAttention`` contrib operator, float32,
  ``intra_op_num_threads=--threads``, its one-node graph built with the ``onnx`` helper API.

Every implementation computes softmax(Q.K^T / sqrt(D) + mask).V with no dropout on the same
values (the float16 inputs, widened to float32 for the peers). The mask is either absent or a
key-padding mask: batch b attends to its first L_b keys (L_b between S/2 and S); the library and
PyTorch get it as an additive [B, 1, 1, S] mask of 0 / -10000, ONNX Runtime as its int32
key_padding_mask [B, S] (1 keep, 0 mask, which it turns into -10000). Inputs are prepared in
each implementation's own layout outside the timed region: [B, N, S, D] for the library and
PyTorch, [B, S, N*D] for ONNX Runtime. The library's output is already [B*S, N*D]; PyTorch's
stays [B, N, S, D] (the permute is not timed).

Each implementation runs in a process of its own (thread pools that keep spinning after a call
would otherwise take the cores from the next one), once to warm up, then --repeat times, in
--rounds rounds that alternate the order; the table gives the median and minimum wall time, GFLOP/s = 4*B*N*S^2*D / median, peer/this = the peer's median over this library's,
and rel.diff = ||peer - this|| / ||this|| over the outputs, a check that all computed the same.

    FUSED_ATTENTION_LIBRARY=build/libfused_attention.so PYTHONPATH=python \\
        python3 bench/peers.py --shapes 32,12,128,64 --repeat 5

The peers are not dependencies of the project: install them in a separate environment, e.g.
``python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpy torch onnx onnxruntime``.
"""

import argparse
import math
import os
import platform
import json
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_SHAPES = "24,16,512,64;32,12,128,64;8,12,384,64;1,16,4096,64"
MASK_VALUE = -10000.0


def parse_shapes(text):
    shapes = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        dims = tuple(int(x) for x in item.split(","))
        if len(dims) != 4 or min(dims) < 1:
            raise SystemExit("--shapes: %r is not B,N,S,D with positive sizes" % item)
        shapes.append(dims)
    return shapes


def timed(fn, repeat):
    """Warm up once, then time `repeat` calls; returns (median ms, min ms, last result)."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times), result


class Problem:
    """One benchmark case: the float16 inputs and the key lengths of the padding mask."""

    def __init__(self, b, n, s, d, masked, seed=0):
        rng = np.random.default_rng(seed)
        self.b, self.n, self.s, self.d, self.masked = b, n, s, d, masked
        self.q, self.k, self.v = (rng.standard_normal((b, n, s, d), dtype=np.float32)
                                  .astype(np.float16) for _ in range(3))
        self.lengths = rng.integers(max(1, s // 2), s + 1, b) if masked else np.full(b, s)
        self.scale = 1.0 / math.sqrt(d)

    def additive_mask(self, dtype):
        """[B, 1, 1, S]: 0 where a key is attended, -10000 where it is padding."""
        if not self.masked:
            return None
        m = np.zeros((self.b, 1, 1, self.s), dtype)
        for i, length in enumerate(self.lengths):
            m[i, ..., length:] = MASK_VALUE
        return m

    def keep_mask(self):
        """[B, S] int32: 1 for an attended key, 0 for padding (ONNX Runtime's key_padding_mask)."""
        m = np.zeros((self.b, self.s), np.int32)
        for i, length in enumerate(self.lengths):
            m[i, :length] = 1
        return m

    @property
    def flops(self):
        return 4.0 * self.b * self.n * self.s * self.s * self.d

    @property
    def label(self):
        return "%d,%d,%d,%d" % (self.b, self.n, self.s, self.d)


# ---- the implementations -----------------------------------------------------------------------
# Each runner(problem, threads) returns a callable whose result is an array comparable with the
# library's [B*S, N*D] output after to_rows().


class ThisLibrary:
    name = "fused_attention (fp16)"

    def __init__(self):
        try:
            import fused_attention
        except ModuleNotFoundError:  # not installed: use the package in this source tree
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))), "python"))
            import fused_attention
        self.fa = fused_attention
        self.version = "libfused_attention %s (%s)" % (fused_attention.__version__,
                                                       fused_attention.simd_level())

    def runner(self, p, threads):
        mask = p.additive_mask(np.float16)
        return lambda: self.fa.fused_attention_score(p.q, p.k, p.v, mask, p.scale, 1.0,
                                                     threads=threads)

    @staticmethod
    def to_rows(out, p):
        return np.asarray(out, np.float32)


class TorchSDPA:
    name = "torch sdpa (fp32)"

    def __init__(self):
        import torch
        import torch.nn.functional as F
        if not hasattr(F, "scaled_dot_product_attention"):
            raise ImportError("torch %s has no scaled_dot_product_attention (needs 2.0 or later)"
                              % torch.__version__)
        self.torch, self.sdpa = torch, F.scaled_dot_product_attention
        self.version = "torch %s" % torch.__version__

    def runner(self, p, threads):
        torch = self.torch
        torch.set_num_threads(threads)
        q, k, v = (torch.from_numpy(x.astype(np.float32)) for x in (p.q, p.k, p.v))
        mask = p.additive_mask(np.float32)
        mask = None if mask is None else torch.from_numpy(mask)
        # 1/sqrt(D) is SDPA's default scale, the same as p.scale

        def run():
            with torch.inference_mode():
                return self.sdpa(q, k, v, attn_mask=mask)
        return run

    @staticmethod
    def to_rows(out, p):
        return out.numpy().transpose(0, 2, 1, 3).reshape(p.b * p.s, p.n * p.d)


class OrtMultiHeadAttention:
    name = "onnxruntime MHA (fp32)"

    def __init__(self):
        import onnx
        import onnxruntime
        self.onnx, self.ort = onnx, onnxruntime
        self.version = "onnxruntime %s, onnx %s" % (onnxruntime.__version__, onnx.__version__)

    def _model(self, p):
        from onnx import TensorProto, helper
        hidden = p.n * p.d
        shape = [p.b, p.s, hidden]
        inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
                  for name in ("query", "key", "value")]
        node_inputs = ["query", "key", "value"]
        if p.masked:
            # inputs 3 and 4 of the operator: bias (absent) and key_padding_mask
            node_inputs += ["", "key_padding_mask"]
            inputs.append(helper.make_tensor_value_info("key_padding_mask", TensorProto.INT32,
                                                        [p.b, p.s]))
        node = helper.make_node("MultiHeadAttention", node_inputs, ["output"],
                                domain="com.microsoft", num_heads=p.n, scale=p.scale,
                                mask_filter_value=MASK_VALUE)
        output = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
        graph = helper.make_graph([node], "multi_head_attention", inputs, [output])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 8  # old enough for any onnxruntime that has the operator
        return model.SerializeToString()

    def runner(self, p, threads):
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = self.ort.InferenceSession(self._model(p), options,
                                            providers=["CPUExecutionProvider"])

        def rows(x):  # [B, N, S, D] -> [B, S, N*D]
            return np.ascontiguousarray(
                x.astype(np.float32).transpose(0, 2, 1, 3).reshape(p.b, p.s, p.n * p.d))
        feeds = {"query": rows(p.q), "key": rows(p.k), "value": rows(p.v)}
        if p.masked:
            feeds["key_padding_mask"] = p.keep_mask()
        return lambda: session.run(None, feeds)[0]

    @staticmethod
    def to_rows(out, p):
        return out.reshape(p.b * p.s, p.n * p.d)


def load_peers():
    peers = []
    for cls, install in ((TorchSDPA, "pip install torch"),
                         (OrtMultiHeadAttention, "pip install onnxruntime onnx")):
        try:
            peers.append(cls())
        except ImportError as exc:
            print("%s is skipped: it is not available here (%s; %s)." % (cls.name, exc, install))
    return peers


IMPLEMENTATIONS = {"this": ThisLibrary, "torch": TorchSDPA, "ort": OrtMultiHeadAttention}


def worker(args):
    """--worker: time one implementation on one case in this (fresh) process and print one JSON
    line; the output goes to --out for the parent's comparison."""
    b, n, s, d, masked = (int(x) for x in args.worker_case.split(","))
    impl = IMPLEMENTATIONS[args.worker]()
    p = Problem(b, n, s, d, bool(masked))
    times = []
    run = impl.runner(p, args.threads)
    out = run()  # warm-up
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = run()
        times.append((time.perf_counter() - start) * 1e3)
    np.save(args.out, impl.to_rows(out, p))
    print(json.dumps({"times": times, "version": impl.version}))
    return 0


def run_worker(name, case, args, out_path):
    """One implementation on one case in a child process: (times in ms, version), or raises."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--worker-case", case,
           "--repeat", str(args.repeat), "--threads", str(args.threads), "--out", out_path]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["times"], result["version"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES,
                        help="B,N,S,D;B,N,S,D;... (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs per round after one warm-up (default 5)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of every implementation in turn, the order reversed every "
                        "other round so that a drifting machine favours none (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every "
                        "implementation (default 2)")
    parser.add_argument("--mask", choices=("none", "padding", "both"), default="both",
                        help="no mask, a key-padding mask, or both (default)")
    parser.add_argument("--worker", choices=sorted(IMPLEMENTATIONS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-case", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1 or args.rounds < 1:
        parser.error("--repeat, --rounds and --threads must be at least 1")
    if args.worker:
        return worker(args)

    # Each implementation runs in a process of its own: thread pools that spin after a call
    # (libgomp's, ONNX Runtime's) would otherwise steal the cores from the next implementation.
    ThisLibrary()  # fails early, with its own message, when the library cannot be loaded
    names = ["this"] + [key for key, cls in (("torch", TorchSDPA), ("ort", OrtMultiHeadAttention))
                        if cls in (type(peer) for peer in load_peers())]
    shapes = parse_shapes(args.shapes)
    masks = {"none": [False], "padding": [True], "both": [False, True]}[args.mask]
    header = "%-14s %-8s %-24s %10s %10s %9s %10s %9s" % (
        "B,N,S,D", "mask", "implementation", "median ms", "min ms", "GFLOP/s", "peer/this",
        "rel.diff")
    versions = {}
    with tempfile.TemporaryDirectory() as tmp:
        lines = []
        for b, n, s, d in shapes:
            for masked in masks:
                p = Problem(b, n, s, d, masked)
                case = "%d,%d,%d,%d,%d" % (b, n, s, d, int(masked))
                times = {name: [] for name in names}
                failed = {}
                for r in range(args.rounds):
                    for name in (names if r % 2 == 0 else names[::-1]):
                        if name in failed:
                            continue
                        try:
                            t, versions[name] = run_worker(name, case, args,
                                                           os.path.join(tmp, name + ".npy"))
                            times[name] += t
                        except Exception as exc:  # a peer that cannot run a case is reported
                            failed[name] = str(exc)
                if "this" in failed:
                    raise SystemExit("fused_attention failed on %s: %s" % (case, failed["this"]))
                ours = np.load(os.path.join(tmp, "this.npy"))
                med = statistics.median(times["this"])
                lines.append("%-14s %-8s %-24s %10.2f %10.2f %9.1f %10s %9s"
                             % (p.label, "padding" if masked else "none", ThisLibrary.name, med,
                                min(times["this"]), p.flops / med / 1e6, "1.00", "-"))
                for name in names[1:]:
                    label = IMPLEMENTATIONS[name].name
                    if name in failed:
                        lines.append("%-14s %-8s %-24s failed: %s" % ("", "", label,
                                                                      failed[name]))
                        continue
                    rows = np.load(os.path.join(tmp, name + ".npy"))
                    diff = float(np.linalg.norm(rows - ours) / np.linalg.norm(ours))
                    pmed = statistics.median(times[name])
                    lines.append("%-14s %-8s %-24s %10.2f %10.2f %9.1f %10.2f %9.1e"
                                 % ("", "", label, pmed, min(times[name]), p.flops / pmed / 1e6,
                                    pmed / med, diff))
        print("# %s | Python %s on %s, %d CPUs, %d threads each, %d rounds x %d runs, each "
              "implementation in its own process"
              % (" | ".join(versions[name] for name in names if name in versions),
                 platform.python_version(), platform.machine(), os.cpu_count() or 0,
                 args.threads, args.rounds, args.repeat))
        print(header)
        print("-" * len(header))
        for line in lines:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
