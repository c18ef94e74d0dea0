"""The torch_npu documentation example of npu_fused_attention_score, on the CPU.

On an Ascend NPU the documented example reads:

    query_layer = torch_npu.npu_format_cast(torch.rand(24, 16, 512, 64).npu(), 29).half()
    ... (key_layer, value_layer alike, attention_mask of [24, 16, 512, 512])
    result = torch_npu.npu_fused_attention_score(query_layer, key_layer, value_layer,
                                                 attention_mask, scale, keep_prob)

Here the same lines run with ``import fused_attention.torch_npu as torch_npu`` and without
``.npu()``. After ``pip install ./python`` (which builds the C library into the package):

    python3 examples/torch_npu_example.py

or, against a CMake build tree without installing (FUSED_ATTENTION_LIBRARY is made absolute
from the current directory):

    FUSED_ATTENTION_LIBRARY=build/libfused_attention.so.0 PYTHONPATH=python \
        python3 examples/torch_npu_example.py
"""

import time

import torch

import fused_attention
import fused_attention.torch_npu as torch_npu

query_layer = torch_npu.npu_format_cast(torch.rand(24, 16, 512, 64), 29).half()
key_layer = torch_npu.npu_format_cast(torch.rand(24, 16, 512, 64), 29).half()
value_layer = torch_npu.npu_format_cast(torch.rand(24, 16, 512, 64), 29).half()
attention_mask = torch_npu.npu_format_cast(torch.rand(24, 16, 512, 512), 29).half()
scale = 0.125
keep_prob = 0.5

start = time.perf_counter()
context_layer = torch_npu.npu_fused_attention_score(query_layer, key_layer, value_layer,
                                                    attention_mask, scale, keep_prob)
elapsed = time.perf_counter() - start

print(context_layer)
print("query/key/value %s, attention_mask %s, %s; scale %g, keep_prob %g"
      % (list(query_layer.shape), list(attention_mask.shape), query_layer.dtype, scale,
         keep_prob))
print("result %s %s in %.1f ms (libfused_attention %s, %s, %d threads)"
      % (list(context_layer.shape), context_layer.dtype, elapsed * 1e3,
         fused_attention.__version__, fused_attention.simd_level(), torch.get_num_threads()))
