"""GEMMs with pre-packed weights for inference on CPU: bf16 linear layers, and the conv
filters of feature_encoder.py in float32 and bf16.

``torch.nn.functional.linear`` on CPU lays the weight matrix out for the GEMM kernel on every
call (oneDNN's blocked format for bf16; MKL's for float32). Packing each weight once into
oneDNN's format (``torch.ops.mkldnn._reorder_linear_weight``) and calling
``_linear_pointwise`` -- what torch.compile's CPU backend does for frozen models -- saves
that work: in wav2vec2-base's shapes on this project's CPU, 3-13% of each bf16 GEMM (most on
the 768 -> 3072 projection) and 10-20% of each float32 one (microbenchmarks; a whole-model
forward gained 5-8% in bf16 and 1-2% in float32, so float32 linear layers stay unpacked,
see pack_linears). Results equal ``F.linear``'s up to float rounding (another summation
order; bf16 accumulates in float32 either way).

A packed linear layer is used only under no_grad/inference_mode in eval mode, for inputs of
the weight's dtype on CPU; anything else runs the class's own forward. A packed copy is
re-made whenever its weight's version counter moves, which most in-place updates do (e.g.
SGD's or a foreach AdamW's step), but not all: ``torch.optim.AdamW(fused=True)``, the training
loop's optimizer on CPU, updates the weights in place without moving it. So whatever changes
weights behind the counter's back calls `forget` before the next inference: `w2v finetune`
does before each evaluation during training (without it, every evaluation after the first
scored the feature encoder's filters as the first had packed them). These are private torch
operators: if they are missing or disagree with ``F.linear`` on a probe, nothing is patched.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("w2v")


_WORKS: dict[Any, bool] = {}  # dtype -> whether the packed path works here (probed once)


def matmul(holder: Any, x: Any, weight: Any, matrix: Callable[[], Any], bias: Any = None) -> Any:
    """``x @ matrix().T + bias`` for a 2-D `x` on CPU, with the packed copy of `matrix()`
    cached on `holder` and re-made whenever `weight` (the parameter it is made from)
    changes; ``F.linear`` where packing is unavailable. For inference only."""
    import torch

    if not _available(x.dtype):
        return torch.nn.functional.linear(x, matrix(), bias)
    key = (weight._version, weight.data_ptr(), weight.dtype)
    packed = getattr(holder, "_w2v_packed", None)
    if packed is None or packed[0] != key:
        packed = (key, torch.ops.mkldnn._reorder_linear_weight(matrix().detach().contiguous(), None))
        holder._w2v_packed = packed
    return torch.ops.mkldnn._linear_pointwise(x, packed[1], bias, "none", [], "")


def forget(model: Any) -> int:
    """Drop the packed copies cached in `model`'s modules, so the next inference packs the
    current weights (for updates that the version counter misses: fused optimizers). Returns
    how many were dropped."""
    dropped = 0
    for module in model.modules():
        if getattr(module, "_w2v_packed", None) is not None:
            module._w2v_packed = None
            dropped += 1
    return dropped


def _packed_forward(self: Any, x: Any) -> Any:
    import torch

    weight = self.weight
    if torch.is_grad_enabled() or self.training or x.dtype != weight.dtype or x.device.type != "cpu":
        return type(self).forward(self, x)
    shape = x.shape
    out = matmul(self, x.reshape(-1, shape[-1]), weight, lambda: weight, self.bias)
    return out.reshape(*shape[:-1], out.shape[-1])


def _available(dtype: Any) -> bool:
    """Whether the packed path works here for `dtype` (probed once per process)."""
    if dtype not in _WORKS:
        _WORKS[dtype] = _works(dtype)
    return _WORKS[dtype]


def _works(dtype: Any) -> bool:
    """Whether the packed path exists here for `dtype` and agrees with F.linear on a probe."""
    import torch

    try:
        with torch.inference_mode():
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(37, 64, generator=generator).to(dtype)
            weight = torch.randn(96, 64, generator=generator).to(dtype)
            bias = torch.randn(96, generator=generator).to(dtype)
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
            got = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "").float()
            want = torch.nn.functional.linear(x.float(), weight.float(), bias.float())
        tolerance = 1e-4 if dtype == torch.float32 else 2e-2
        return bool(torch.allclose(got, want, rtol=tolerance, atol=tolerance * 5))
    except Exception as e:  # noqa: BLE001 - an optional speed-up: any failure means "not here"
        logger.debug("packed %s GEMMs unavailable: %s", dtype, e)
        return False


def pack_linears(model: Any) -> int:
    """Give the bf16 CPU nn.Linear layers of `model` the packed forward; returns how many.

    Not float32 ones: the packed copies sit beside the original weights (85 M parameters,
    340 MB, for wav2vec2-base in float32; w2v transcribe of the 79 shared recordings peaked
    at 1,679 MB RSS with them and 1,203 MB without) for 1-2% of the forward. The conv
    filters (feature_encoder.py, via `matmul`) are packed in both dtypes: 17 MB, more gain."""
    import torch

    linears = [m for m in model.modules() if type(m) is torch.nn.Linear and not hasattr(m, "_w2v_packed")
               and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"]
    if not linears or not _available(torch.bfloat16):
        return 0
    for module in linears:
        module._w2v_packed = None
        module.forward = types.MethodType(_packed_forward, module)
    logger.debug("packed %d linear layers", len(linears))
    return len(linears)
