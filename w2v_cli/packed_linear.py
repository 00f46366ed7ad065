"""Linear layers with pre-packed weights for inference on CPU (float32 and bf16).

``torch.nn.functional.linear`` on CPU lays the weight matrix out for the GEMM kernel on every
call (oneDNN's blocked format for bf16; MKL's for float32). Packing each weight once into
oneDNN's format (``torch.ops.mkldnn._reorder_linear_weight``) and calling
``_linear_pointwise`` -- what torch.compile's CPU backend does for frozen models -- saves
that work: in wav2vec2-base's shapes on this project's CPU, 3-13% of each bf16 GEMM (most on
the 768 -> 3072 projection) and 10-20% of each float32 one (microbenchmarks; a whole-model
forward gained 5-8% in bf16 and 1-2% in float32, so float32 linear layers stay unpacked,
see pack_linears). Results equal ``F.linear``'s up
to float rounding (another summation order; bf16 accumulates in float32 either way).

The packed copy is used only under no_grad/inference_mode in eval mode, for inputs of the
weight's dtype on CPU; anything else runs the class's own forward. It is re-made whenever the weight changes
(its version counter moves with every in-place update, e.g. an optimizer step), so a model
that `w2v finetune` trains and evaluates in turn is never run with stale weights. These are
private torch operators: if they are missing or disagree with ``F.linear`` on a probe,
nothing is patched.
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

    if x.dtype not in _WORKS:
        _WORKS[x.dtype] = _works(x.dtype)
    if not _WORKS[x.dtype]:
        return torch.nn.functional.linear(x, matrix(), bias)
    key = (weight._version, weight.data_ptr(), weight.dtype)
    packed = getattr(holder, "_w2v_packed", None)
    if packed is None or packed[0] != key:
        packed = (key, torch.ops.mkldnn._reorder_linear_weight(matrix().detach().contiguous(), None))
        holder._w2v_packed = packed
    return torch.ops.mkldnn._linear_pointwise(x, packed[1], bias, "none", [], "")


def _packed_forward(self: Any, x: Any) -> Any:
    import torch

    weight = self.weight
    if torch.is_grad_enabled() or self.training or x.dtype != weight.dtype or x.device.type != "cpu":
        return type(self).forward(self, x)
    shape = x.shape
    out = matmul(self, x.reshape(-1, shape[-1]), weight, lambda: weight, self.bias)
    return out.reshape(*shape[:-1], out.shape[-1])


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
        logger.debug("packed bf16 linear layers unavailable: %s", e)
        return False


def pack_linears(model: Any) -> int:
    """Give the bf16 CPU nn.Linear layers of `model` the packed forward; returns how many.

    Not float32 ones: the packed copy sits beside the original weights, 340 MB more for
    wav2vec2-base in float32 (a one-hour file then peaked at 1.49 GB RSS, against 1.5 GB
    allowed), for 1-2% of the forward. The conv filters (feature_encoder.py, via `matmul`)
    are packed in both dtypes: they are 17 MB and gain more."""
    import torch

    linears = [m for m in model.modules() if type(m) is torch.nn.Linear and not hasattr(m, "_w2v_packed")
               and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"]
    for dtype in {m.weight.dtype for m in linears} - set(_WORKS):
        _WORKS[dtype] = _works(dtype)
    linears = [m for m in linears if _WORKS[m.weight.dtype]]
    if not linears:
        return 0
    for module in linears:
        module._w2v_packed = None
        module.forward = types.MethodType(_packed_forward, module)
    logger.debug("packed %d linear layers", len(linears))
    return len(linears)
