#!/usr/bin/env python3
"""Time libfused_attention against other CPU attention implementations, with each one's error.

Compared, each when installed (a missing one is reported as "not installed", never silently):

- this library: ``fused_attention.fused_attention_score`` (the streaming forward), float16
  inputs and output, ``threads=--threads``, once per matrix engine named by --gemm (auto,
  builtin, blas, amx), each run with the FAS_GEMM environment variable set to that engine for
  its process; an engine the library refuses is reported with the library's sentence;
- PyTorch: ``torch.nn.functional.scaled_dot_product_attention`` in each dtype of
  --torch-dtypes (fp32, bf16, fp16), with ``torch.set_num_threads(--threads)``;
- ONNX Runtime: the ``com.microsoft.MultiHeadAttention`` contrib operator, float32,
  ``intra_op_num_threads=--threads``, its one-node graph built with the ``onnx`` helper API.

Every implementation computes softmax(scale * Q.K^T + mask).V, scale = 1/sqrt(D), with no
dropout (keep_prob 1), from the same float16 inputs: widened exactly to float32 for the fp32
peers, given as they are to the fp16 ones, rounded to nearest bf16 for torch bf16 (so its error
includes the rounding of its inputs). The mask is either absent or a key-padding mask: batch b
attends to its first L_b keys (L_b between S/2 and S); the library and PyTorch get it as an
additive [B, 1, 1, S] mask of 0 / -10000 in their input dtype (-10000 is -9984 in bf16; both
give exp = 0), ONNX Runtime as its int32 key_padding_mask [B, S] (1 keep, 0 mask, which it turns
into -10000). Inputs are prepared in each implementation's own layout outside the timed region:
[B, N, S, D] for the library and PyTorch, [B, S, N*D] for ONNX Runtime. The library's output is
already [B*S, N*D]; PyTorch's stays [B, N, S, D] (the permute is not timed).

Accuracy: every output is compared with an fp64 reference computed by this script from the
definition (numpy float64, the same float16 inputs widened exactly, -10000 masks, a max-
subtracted softmax), in a process of its own, once per shape and mask. The table gives the
largest absolute error of the context, that error over max|ref|, and how many elements miss the
library's accuracy contract (docs/semantics.md section 2: |got - ref| <= 2^-12 max|ref| +
2^-9 |ref| for fp16 and fp32 outputs, 2^-9 max|ref| + 2^-8 |ref| for bf16 ones). The rows
"exact, rounded to fp16/bf16" are the reference rounded once into that dtype: the least error
any output in that dtype can have.

Timing: each implementation runs in a process of its own (thread pools that keep spinning after
a call would otherwise take the cores from the next one), once to warm up, then --repeat times,
in --rounds rounds that alternate the order. The table gives the median and minimum wall time,
GFLOP/s = 4*B*N*S^2*D / median (the masked keys are counted too), and x/this = the row's median
over that of this library's first engine in --gemm.

    FUSED_ATTENTION_LIBRARY=$PWD/build/libfused_attention.so \\
        /path/to/venv/bin/python bench/peers.py --gemm builtin,blas,amx \\
        --seq 128,256,512,1024,2048 --plot peers.png --csv peers.csv

--seq S1,S2,... replaces --shapes by a sweep over the sequence length at the fixed B, N, D of
--seq-shape (default 4,8,64); --plot FILE.png draws the median time (or GFLOP/s with
--plot-metric gflops) and the relative error against S for every implementation (matplotlib,
Agg backend). --ref-cache DIR keeps the references (a few seconds each for the large shapes)
for later runs. The script never changes OPENBLAS_CORETYPE or any other setting of the BLAS; the
header shows what the library's BLAS reports.

The peers are not dependencies of the project: install them in a separate environment, e.g.
``python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpy torch onnx onnxruntime
matplotlib``.
"""

import argparse
import ctypes
import csv
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

DEFAULT_SHAPES = "24,16,512,64;32,12,128,64;8,12,384,64;1,16,4096,64"
MASK_VALUE = -10000.0
ENGINES = ("auto", "builtin", "blas", "amx")
TORCH_DTYPES = ("fp32", "bf16", "fp16")
PEERS = ("torch", "ort")
# The accuracy contract of docs/semantics.md section 2, by output dtype: (rtol, atol / max|ref|)
CONTRACT = {"fp16": (2.0**-9, 2.0**-12), "fp32": (2.0**-9, 2.0**-12), "bf16": (2.0**-8, 2.0**-9)}


def parse_shapes(text):
    shapes = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        try:
            dims = tuple(int(x) for x in item.split(","))
        except ValueError:
            dims = ()
        if len(dims) != 4 or min(dims) < 1:
            raise SystemExit("--shapes: %r is not B,N,S,D with positive sizes" % item)
        shapes.append(dims)
    if not shapes:
        raise SystemExit("--shapes: no shape given")
    return shapes


def parse_list(option, text, allowed):
    names = [x.strip().lower() for x in text.split(",") if x.strip()]
    for name in names:
        if name not in allowed:
            raise SystemExit("%s: %r is not one of %s" % (option, name, ", ".join(allowed)))
    return list(dict.fromkeys(names))  # once each, in the order given


def parse_ints(option, text, count=None):
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        values = []
    if not values or min(values) < 1 or (count is not None and len(values) != count):
        raise SystemExit("%s: %r is not %s positive integers separated by commas"
                         % (option, text, count if count is not None else "a list of"))
    return values


class Problem:
    """One benchmark case: the float16 inputs and the key lengths of the padding mask. The same
    (shape, mask, seed) gives the same values in every process of one interpreter."""

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

    def checksum(self):
        """CRC-32 of the inputs: every process must have built the same problem."""
        crc = 0
        for x in (self.q, self.k, self.v, np.asarray(self.lengths, np.int64)):
            crc = zlib.crc32(np.ascontiguousarray(x).tobytes(), crc)
        return crc

    @property
    def flops(self):
        return 4.0 * self.b * self.n * self.s * self.s * self.d

    @property
    def label(self):
        return "%d,%d,%d,%d" % (self.b, self.n, self.s, self.d)


def reference(p, rows_per_block=1024):
    """softmax(scale * Q.K^T + mask).V in float64 from the definition, as [B*S, N*D]. Independent
    of every timed implementation: numpy float64 products of the exactly widened inputs."""
    out = np.empty((p.b, p.s, p.n, p.d), np.float64)
    mask = p.additive_mask(np.float64)
    for b in range(p.b):
        for h in range(p.n):
            k = p.k[b, h].astype(np.float64)
            v = p.v[b, h].astype(np.float64)
            for i in range(0, p.s, rows_per_block):  # bounded memory for long sequences
                q = p.q[b, h, i:i + rows_per_block].astype(np.float64)
                x = (q @ k.T) * p.scale
                if mask is not None:
                    x += mask[b, 0]
                x -= x.max(axis=1, keepdims=True)
                np.exp(x, out=x)
                x /= x.sum(axis=1, keepdims=True)
                out[b, i:i + rows_per_block, h, :] = x @ v
    return out.reshape(p.b * p.s, p.n * p.d)


def round_bf16(x):
    """float64 -> the nearest bf16 value (ties to even), as float64: 8 significant bits."""
    m, e = np.frexp(x)
    return np.ldexp(np.round(m * 256.0), e - 8)


def errors(got, ref, dtype):
    """(max |got - ref|, that / max|ref|, elements outside the contract for `dtype`)."""
    ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = np.abs(got.astype(np.float64) - ref)
    err = float(np.max(diff)) if diff.size else 0.0  # nan when got holds a NaN
    rtol, atol = CONTRACT[dtype]
    misses = int(np.count_nonzero(~(diff <= atol * ref_max + rtol * np.abs(ref))))
    return err, (err / ref_max if ref_max > 0 else float("nan")), misses


def cpu_description():
    """Model name and the vector units that matter here, from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in (platform.processor(), platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    units = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_fp16", "AVX512-FP16"),
                                     ("amx_bf16", "AMX-BF16"), ("asimd", "NEON"), ("sve", "SVE"))
             if flag in flags]
    if "avx2" in flags and "avx512f" not in flags:
        units.insert(0, "AVX2")
    return "%s (%s)" % (model, ", ".join(units)) if units else model


# ---- the implementations -----------------------------------------------------------------------
# Each is named by a spec "this:<engine>", "torch:<dtype>" or "ort:fp32"; runner(problem, threads)
# returns a callable whose result to_rows() turns into a [B*S, N*D] array.


class Unavailable(Exception):
    """The implementation exists but refuses this configuration (an engine the library lacks, a
    dtype torch does not run on this CPU): reported with its sentence, not as a failure."""


def import_this_library():
    try:
        import fused_attention
    except ModuleNotFoundError:  # not installed: use the package in this source tree
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "python"))
        import fused_attention
    return fused_attention


class ThisLibrary:
    dtype = "fp16"

    def __init__(self, engine):
        fa = import_this_library()
        self.fa, self.engine = fa, engine
        self.label = "fused_attention fp16 %s" % engine
        used = engine
        # A CDLL of our own for the 0.3 queries, so that the package's prototypes stay as they are
        lib = ctypes.CDLL(fa.library_path)
        if hasattr(lib, "fas_gemm_engine"):
            for name in ("fas_gemm_engine", "fas_last_error", "fas_blas_info"):
                getattr(lib, name).restype = ctypes.c_char_p
                getattr(lib, name).argtypes = []
            used = lib.fas_gemm_engine().decode("utf-8", "replace")
            if used == "invalid":  # FAS_GEMM names an engine this library or CPU cannot run
                raise Unavailable(lib.fas_last_error().decode("utf-8", "replace"))
            self.blas = lib.fas_blas_info().decode("utf-8", "replace")
        elif engine != "auto":
            raise Unavailable("libfused_attention %s has no matrix engines to choose (0.3.0 and "
                              "later)" % fa.__version__)
        else:
            self.blas = "?"
        if engine == "auto":
            self.label += "=" + used
        self.version = "libfused_attention %s (%s, BLAS: %s)" % (fa.__version__, fa.simd_level(),
                                                                self.blas)

    def runner(self, p, threads):
        mask = p.additive_mask(np.float16)
        return lambda: self.fa.fused_attention_score(p.q, p.k, p.v, mask, p.scale, 1.0,
                                                     threads=threads)

    @staticmethod
    def to_rows(out, p):
        return np.asarray(out)


class TorchSDPA:
    def __init__(self, dtype):
        import torch
        import torch.nn.functional as F
        if not hasattr(F, "scaled_dot_product_attention"):
            raise ImportError("torch %s has no scaled_dot_product_attention (needs 2.0 or later)"
                              % torch.__version__)
        self.torch, self.sdpa = torch, F.scaled_dot_product_attention
        self.dtype = dtype
        self.tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        self.label = "torch sdpa %s" % dtype
        self.version = "torch %s (CPU capability %s)" % (
            torch.__version__, torch.backends.cpu.get_cpu_capability()
            if hasattr(torch.backends, "cpu") else "?")

    def runner(self, p, threads):
        torch = self.torch
        torch.set_num_threads(threads)
        # fp16 -> fp32 is exact; -> bf16 rounds to nearest even (torch's conversion)
        q, k, v = (torch.from_numpy(x.astype(np.float32)).to(self.tdtype) for x in (p.q, p.k, p.v))
        mask = p.additive_mask(np.float32)
        mask = None if mask is None else torch.from_numpy(mask).to(self.tdtype)
        # 1/sqrt(D) is SDPA's default scale, the same as p.scale

        def run():
            with torch.inference_mode():
                return self.sdpa(q, k, v, attn_mask=mask)
        return run

    def first_call(self, run):
        """torch may lack a reduced-precision CPU kernel: that is a fact to report, not a bug."""
        try:
            return run()
        except (RuntimeError, NotImplementedError) as exc:
            if self.dtype == "fp32":
                raise
            raise Unavailable("torch %s does not run %s SDPA on this CPU: %s" % (
                self.torch.__version__, self.dtype, str(exc).strip().splitlines()[0])) from exc

    @staticmethod
    def to_rows(out, p):
        return out.float().numpy().transpose(0, 2, 1, 3).reshape(p.b * p.s, p.n * p.d)


class OrtMultiHeadAttention:
    dtype = "fp32"
    label = "onnxruntime MHA fp32"

    def __init__(self, dtype="fp32"):
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


KINDS = {"this": ThisLibrary, "torch": TorchSDPA, "ort": OrtMultiHeadAttention}
# The modules each kind needs, checked in the parent without importing them
MODULES = {"torch": ("torch",), "ort": ("onnxruntime", "onnx")}
INSTALL = {"torch": "pip install torch", "ort": "pip install onnxruntime onnx"}


def spec_label(spec):
    kind, variant = spec.split(":")
    if kind == "this":
        return "fused_attention fp16 %s" % variant
    if kind == "torch":
        return "torch sdpa %s" % variant
    return "onnxruntime MHA %s" % variant


def make_impl(spec):
    kind, variant = spec.split(":")
    return KINDS[kind](variant)


# ---- the child processes -----------------------------------------------------------------------


WARMUP_SECONDS = 0.3


def worker(args):
    """--worker SPEC: in this (fresh) process, time one implementation on one case, save its
    output to --out and print one JSON line. --worker ref computes the fp64 reference instead."""
    b, n, s, d, masked = (int(x) for x in args.worker_case.split(","))
    p = Problem(b, n, s, d, bool(masked))
    if args.worker == "ref":
        np.save(args.out, reference(p))
        print(json.dumps({"crc": p.checksum()}))
        return 0
    try:
        impl = make_impl(args.worker)
        run = impl.runner(p, args.threads)
        first = getattr(impl, "first_call", lambda fn: fn())
        out = first(run)  # warm-up
    except (Unavailable, ImportError) as exc:  # ImportError: e.g. a torch without SDPA
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    # Warm up for WARMUP_SECONDS, not one call: a thread pool started in this fresh process
    # (numpy's bundled OpenBLAS spins for about 0.1 s after import) would otherwise share the
    # cores with the timed calls; 4-12 ms instead of 0.6 ms at 4x8x128x64, for every
    # implementation whose calls come that early.
    warm_end = time.perf_counter() + WARMUP_SECONDS
    while time.perf_counter() < warm_end:
        out = run()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = run()
        times.append((time.perf_counter() - start) * 1e3)
    np.save(args.out, impl.to_rows(out, p))
    print(json.dumps({"times": times, "version": impl.version, "label": impl.label,
                      "dtype": impl.dtype, "crc": p.checksum()}))
    return 0


def run_child(spec, case, args, out_path, env=None):
    """One child process; returns its JSON result, or raises RuntimeError with its last words."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", spec, "--worker-case", case,
           "--repeat", str(args.repeat), "--threads", str(args.threads), "--out", out_path]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]
        raise RuntimeError(last)
    return json.loads(lines[-1])


def child_env(spec):
    """The environment of a child: this library's get FAS_GEMM=<engine>; nothing else changes."""
    env = dict(os.environ)
    kind, variant = spec.split(":")
    if kind == "this":
        env["FAS_GEMM"] = variant
    return env


# ---- output --------------------------------------------------------------------------------------

COLUMNS = ("B,N,S,D", "mask", "implementation", "median ms", "min ms", "GFLOP/s", "x/this",
           "max|err|", "err/max|ref|", "contract")
ROW = "%-14s %-8s %-32s %10s %9s %8s %7s %9s %12s  %s"


def fmt(value, spec):
    return "-" if value is None else spec % value


def table_lines(results):
    lines = []
    previous = None
    for r in results:
        case = (r["shape"], r["mask"])
        shape, mask = (r["shape"], r["mask"]) if case != previous else ("", "")
        previous = case
        if r["status"] != "ok" and r["median"] is None:
            lines.append("%-14s %-8s %-32s %s" % (shape, mask, r["label"], r["status"]))
            continue
        contract = "-" if r["misses"] is None else (
            "ok" if r["misses"] == 0 else "%d of %d out" % (r["misses"], r["elements"]))
        if r["status"] != "ok":
            contract += "  " + r["status"]
        lines.append(ROW % (shape, mask, r["label"], fmt(r["median"], "%.2f"),
                            fmt(r["min"], "%.2f"), fmt(r["gflops"], "%.1f"),
                            fmt(r["ratio"], "%.2f"), fmt(r["err"], "%.1e"),
                            fmt(r["rel"], "%.1e"), contract))
    return lines


def write_csv(path, results, header_comment):
    fields = ["B", "N", "S", "D", "mask", "implementation", "status", "median_ms", "min_ms",
              "gflops", "x_this", "max_abs_err", "max_abs_err_over_max_ref", "contract_misses",
              "elements", "times_ms"]
    f = sys.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")
    try:
        f.write("# %s\n" % header_comment)
        w = csv.writer(f)
        w.writerow(fields)
        for r in results:
            b, n, s, d = r["dims"]
            w.writerow([b, n, s, d, r["mask"], r["label"], r["status"], r["median"], r["min"],
                        r["gflops"], r["ratio"], r["err"], r["rel"], r["misses"], r["elements"],
                        ";".join("%.4f" % t for t in r["times"])])
    finally:
        if f is not sys.stdout:
            f.close()


def line_style(label):
    """(line style, marker, colour) of a row label: blues for this library's engines, the same
    colour for a dtype in every run."""
    last = label.split()[-1]
    if label.startswith("fused_attention"):
        engine = last.split("=")[-1]
        colour = {"builtin": "tab:blue", "blas": "tab:cyan", "amx": "navy"}.get(engine, "k")
        return "-", "D" if "=" in last else "o", colour
    if label.startswith("torch"):
        return "--", "s", {"fp32": "tab:green", "bf16": "tab:red", "fp16": "tab:orange"}[last]
    return ":", "^", "tab:purple"


def plot(path, results, metric, title, log=sys.stdout):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r["median"] is not None]
    masks = [m for m in ("none", "padding") if any(r["mask"] == m for r in timed)]
    if not masks:
        print("--plot: nothing was timed, so %s is not written." % path, file=log)
        return
    shapes = list(dict.fromkeys(r["dims"] for r in results))
    sweep = len({(b, n, d) for b, n, _, d in shapes}) == 1 and len(shapes) > 1
    xs = {dims: (dims[2] if sweep else i) for i, dims in enumerate(shapes)}
    labels = list(dict.fromkeys(r["label"] for r in timed))
    fig, axes = plt.subplots(2, len(masks), figsize=(6.4 * len(masks), 8.6), squeeze=False,
                             sharex=True)
    for col, mask in enumerate(masks):
        top, bottom = axes[0][col], axes[1][col]
        for label in labels:
            rows = sorted((r for r in timed if r["label"] == label and r["mask"] == mask),
                          key=lambda r: xs[r["dims"]])
            if not rows:
                continue
            style, marker, colour = line_style(label)
            x = [xs[r["dims"]] for r in rows]
            y = [r["gflops"] if metric == "gflops" else r["median"] for r in rows]
            kw = dict(color=colour, linestyle=style if sweep else "none",
                      marker=marker, label=label)
            top.plot(x, y, **kw)
            e = [(x_, r["rel"]) for x_, r in zip(x, rows) if r["rel"] is not None and
                 r["rel"] > 0 and math.isfinite(r["rel"])]
            if e:
                bottom.plot([a for a, _ in e], [c for _, c in e], **kw)
        for dtype, shade in (("fp16", "0.35"), ("bf16", "0.65")):
            rows = sorted((r for r in results if r["label"] == "exact, rounded to " + dtype and
                           r["mask"] == mask and r["rel"]), key=lambda r: xs[r["dims"]])
            if rows:
                bottom.plot([xs[r["dims"]] for r in rows], [r["rel"] for r in rows],
                            color=shade, linewidth=4, alpha=0.35, zorder=0, marker="_",
                            linestyle="-" if sweep else "none",
                            markersize=24, markeredgewidth=4,
                            label="exact, rounded to %s (least error of a %s output)"
                            % (dtype, dtype))
        top.set_title("mask: %s" % ("key padding" if mask == "padding" else "none"))
        top.set_ylabel("GFLOP/s (4·B·N·S²·D / median time)" if metric == "gflops"
                       else "median time per call (ms)")
        bottom.set_ylabel("max |err| / max |ref|  (fp64 reference)")
        bottom.set_yscale("log")
        if metric != "gflops":
            top.set_yscale("log")
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
        if sweep:
            bottom.set_xscale("log", base=2)
            bottom.set_xticks(sorted(set(xs.values())))
            bottom.set_xticklabels([str(v) for v in sorted(set(xs.values()))])
            bottom.set_xlabel("sequence length S (Sq = Sk), B=%d N=%d D=%d"
                              % (shapes[0][0], shapes[0][1], shapes[0][3]))
        else:
            bottom.set_xticks(list(range(len(shapes))))
            bottom.set_xticklabels(["%d,%d,%d,%d" % s for s in shapes], rotation=20)
            bottom.set_xlabel("shape B,N,S,D")
    handles, names = axes[0][0].get_legend_handles_labels()
    extra, extra_names = axes[1][0].get_legend_handles_labels()
    handles += [h for h, name in zip(extra, extra_names) if name.startswith("exact")]
    names += [name for name in extra_names if name.startswith("exact")]
    missing = [label for label in dict.fromkeys(r["label"] for r in results
                                                  if r["median"] is None and
                                                  not r["label"].startswith("exact"))
               if label not in labels]
    if missing:
        fig.text(0.5, 0.005, "not shown (unavailable, failed or not installed; see the table): "
                 + ", ".join(missing), ha="center", va="bottom", fontsize=8, color="0.3")
    ncol = min(3, len(names))
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.02 if missing else 0.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03 + 0.03 * ((len(names) + ncol - 1) // ncol), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print("# plot written to %s" % path, file=log)


# ---- the run -------------------------------------------------------------------------------------


class Run:
    """The measurements of one invocation: every case of every implementation, in the order
    timed, plus what the children said about themselves."""

    def __init__(self, args, specs, floors):
        self.args, self.specs, self.floors = args, specs, floors
        self.versions, self.results, self.base_labels = {}, [], {}
        self.library_failed = False

    def case(self, dims, masked, tmp):
        """One shape and mask: the fp64 reference, then --rounds rounds of every spec, each in
        a child process, then one row per spec and per rounding floor."""
        args, specs = self.args, self.specs
        p = Problem(*dims, masked)
        case = "%d,%d,%d,%d,%d" % (dims + (int(masked),))
        crc = p.checksum()
        del p.q, p.k, p.v  # the children make their own copies
        ref = self.reference(case, crc, tmp)
        times = {spec: [] for spec in specs}
        status, info = {}, {}
        for r in range(args.rounds):
            for spec in (specs if r % 2 == 0 else specs[::-1]):
                if spec in status:
                    continue
                try:
                    got = run_child(spec, case, args, output_path(tmp, spec), child_env(spec))
                except Exception as exc:  # a crash or an error is reported, in its row
                    status[spec] = "failed: %s" % exc
                    self.library_failed |= spec.startswith("this:")
                    continue
                if "unavailable" in got:
                    status[spec] = "unavailable: %s" % got["unavailable"]
                elif got["crc"] != crc:
                    status[spec] = "failed: its process built other inputs"
                else:
                    times[spec] += got["times"]
                    info[spec] = got
                    self.versions[spec.split(":")[0]] = got["version"]
        base_spec = next((spec for spec in specs if spec.startswith("this:") and
                          spec in info and spec not in status), None)
        base = statistics.median(times[base_spec]) if base_spec else None
        if base_spec:
            self.base_labels[info[base_spec]["label"]] = True
        for spec in specs:
            row = self.row(p, info[spec]["label"] if spec in info else spec_label(spec),
                           status.get(spec, "ok"), ref.size)
            row["times"] = times[spec]
            if spec in info and spec not in status:
                med = statistics.median(times[spec])
                out = np.load(output_path(tmp, spec))
                row.update(median=med, min=min(times[spec]), gflops=p.flops / med / 1e6,
                           ratio=med / base if base else None)
                if out.shape != ref.shape:
                    row["status"] = "failed: output of shape %s, not %s" % (out.shape, ref.shape)
                else:
                    row["err"], row["rel"], row["misses"] = errors(out, ref, info[spec]["dtype"])
                    if spec.startswith("this:") and row["misses"] != 0:
                        row["status"] = "OUTSIDE THE CONTRACT"  # the library's own bound
                        self.library_failed = True
            self.results.append(row)
        for dtype in self.floors:
            rounded = ref.astype(np.float16) if dtype == "fp16" else round_bf16(ref)
            row = self.row(p, "exact, rounded to %s" % dtype, "ok", ref.size)
            row["err"], row["rel"], row["misses"] = errors(rounded, ref, dtype)
            self.results.append(row)

    def reference(self, case, crc, tmp):
        """The fp64 reference of a case, computed in a process of its own; with --ref-cache
        kept there under the case and the checksum of its inputs, and taken from there."""
        name = "ref-%s-%08x.npy" % (case.replace(",", "_"), crc)
        cached = os.path.join(self.args.ref_cache, name) if self.args.ref_cache else None
        if cached and os.path.exists(cached):
            return np.load(cached)
        path = os.path.join(tmp, name)
        got = run_child("ref", case, self.args, path)
        if got["crc"] != crc:
            raise SystemExit("the reference process built other inputs than this one")
        if cached:  # copied under a temporary name first: a stopped run leaves no half file
            os.makedirs(self.args.ref_cache, exist_ok=True)
            shutil.copyfile(path, cached + ".part")
            os.replace(cached + ".part", cached)
        return np.load(path)

    @staticmethod
    def row(p, label, status, elements):
        return {"dims": (p.b, p.n, p.s, p.d), "shape": p.label,
                "mask": "padding" if p.masked else "none", "label": label, "status": status,
                "median": None, "min": None, "gflops": None, "ratio": None, "err": None,
                "rel": None, "misses": None, "elements": elements, "times": []}


def load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def output_path(tmp, spec):
    return os.path.join(tmp, spec.replace(":", "-") + ".npy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES,
                        help="B,N,S,D;B,N,S,D;... (default: %(default)s)")
    parser.add_argument("--seq", help="S1,S2,...: a sweep over the sequence length at the B,N,D "
                        "of --seq-shape, instead of --shapes (e.g. 128,256,512,1024,2048)")
    parser.add_argument("--seq-shape", default="4,8,64",
                        help="B,N,D of the --seq sweep (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs per round after one warm-up (default 5)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of every implementation in turn, the order reversed every "
                        "other round so that a drifting machine favours none (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every "
                        "implementation (default 2)")
    parser.add_argument("--mask", choices=("none", "padding", "both"), default="both",
                        help="no mask, a key-padding mask, or both (default)")
    parser.add_argument("--gemm", default="auto",
                        help="this library's matrix engines to time, each in its own processes "
                        "with FAS_GEMM set to it: any of %s, comma-separated (default "
                        "%%(default)s); the first is the x/this baseline" % ",".join(ENGINES))
    parser.add_argument("--torch-dtypes", default=",".join(TORCH_DTYPES),
                        help="dtypes of the torch SDPA rows (default %(default)s)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="peers to run: torch, ort, both (default) or none")
    parser.add_argument("--csv", metavar="FILE", help="also write the results as CSV ('-': "
                        "standard output)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw time (or GFLOP/s) and the "
                        "relative error against S for every implementation")
    parser.add_argument("--plot-metric", choices=("time", "gflops"), default="time",
                        help="what the upper plots show (default: time)")
    parser.add_argument("--ref-cache", metavar="DIR", help="keep the fp64 references in DIR "
                        "and reuse them in later runs (named by shape, mask and a checksum of "
                        "the inputs)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-case", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1 or args.rounds < 1:
        parser.error("--repeat, --rounds and --threads must be at least 1")
    if args.worker:
        return worker(args)

    gemms = parse_list("--gemm", args.gemm, ENGINES)
    if not gemms:
        parser.error("--gemm: name at least one engine")
    torch_dtypes = parse_list("--torch-dtypes", args.torch_dtypes, TORCH_DTYPES)
    peers = [] if args.peers.strip().lower() == "none" else parse_list("--peers", args.peers,
                                                                         PEERS)
    if args.seq:
        b, n, d = parse_ints("--seq-shape", args.seq_shape, 3)
        shapes = [(b, n, s, d) for s in parse_ints("--seq", args.seq)]
    else:
        shapes = parse_shapes(args.shapes)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib (pip install matplotlib)")

    # The library must load here, with its own message when it cannot; nothing is called on it.
    fa = import_this_library()
    specs = ["this:" + g for g in gemms]
    notes = []
    for peer in peers:
        missing = [m for m in MODULES[peer] if importlib.util.find_spec(m) is None]
        variants = torch_dtypes if peer == "torch" else ["fp32"]
        if missing:
            for variant in variants:
                notes.append("%s: not installed (no module %s here; %s)" % (
                    spec_label(peer + ":" + variant), ", ".join(missing), INSTALL[peer]))
        else:
            specs += [peer + ":" + variant for variant in variants]
    masks = {"none": [False], "padding": [True], "both": [False, True]}[args.mask]
    floors = ["fp16"] + (["bf16"] if "torch:bf16" in specs else [])

    load_before = load_average()
    run = Run(args, specs, floors)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        for dims in shapes:
            for masked in masks:
                run.case(dims, masked, tmp)
    versions, results, base_labels = run.versions, run.results, run.base_labels

    load = (load_before, load_average())
    if None not in load:
        notes.append("load average (1 min) %.2f before the run, %.2f after it (this run adds "
                     "about --threads)" % load)
        half = (os.cpu_count() or 1) / 2
        if load[0] > half or load[1] > args.threads + half:
            notes.append("WARNING: other processes share the CPUs: timings with --threads %d are "
                         "unreliable (a thread of a parallel region that loses its core delays "
                         "the whole call); measure on a quiet machine" % args.threads)
    blas = os.environ.get("OPENBLAS_CORETYPE")
    header = ("%s | %s | Python %s, %d CPUs, %d threads each, %d rounds x %d runs, each "
              "implementation in its own process%s" % (
                  cpu_description(),
                  " | ".join(versions[k] for k in ("this", "torch", "ort") if k in versions) or
                  "libfused_attention %s" % fa.__version__,
                  platform.python_version(), os.cpu_count() or 0, args.threads, args.rounds,
                  args.repeat, "; OPENBLAS_CORETYPE=%s (from the caller)" % blas if blas else ""))
    if args.csv != "-":
        print("# " + header)
        for note in notes:
            print("# " + note)
        head = ROW % COLUMNS
        print(head)
        print("-" * len(head))
        for line in table_lines(results):
            print(line)
        print("# x/this: median over that of %s; contract: elements outside docs/semantics.md "
              "section 2's bound for the row's output dtype"
              % (" / ".join(base_labels) or spec_label(specs[0])))
    if args.csv:
        write_csv(args.csv, results, header + "".join("; " + note for note in notes))
    if args.plot:
        shapes_text = ("B=%d N=%d D=%d" % (shapes[0][0], shapes[0][1], shapes[0][3])
                       if args.seq else "shapes B,N,S,D")
        title = ("softmax(Q·Kᵀ/√D + mask)·V on the CPU, %s, keep_prob 1: median of %d x %d "
                 "runs\n%s, %d threads each" % (shapes_text, args.rounds, args.repeat,
                                          cpu_description(), args.threads))
        plot(args.plot, results, args.plot_metric, title,
             sys.stderr if args.csv == "-" else sys.stdout)
    return 1 if run.library_failed else 0


if __name__ == "__main__":
    sys.exit(main())
