"""Linear layers with pre-packed weights for bf16 inference on CPU.

A bf16 ``torch.nn.functional.linear`` on CPU goes to oneDNN, which re-lays-out the weight
matrix into its blocked format on every call. Packing each weight once
(``torch.ops.mkldnn._reorder_linear_weight``) and calling ``_linear_pointwise`` -- what
torch.compile's CPU backend does for frozen models -- saves that work: 3-13% of each GEMM
in wav2vec2-base's shapes on this project's CPU (most on the 768 -> 3072 projection), the
same arithmetic otherwise (oneDNN's bf16 GEMM accumulates in float32 either way).

The packed copy is used only under no_grad/inference_mode in eval mode, for bf16 inputs on
CPU; anything else runs the class's own forward. It is re-made whenever the weight changes
(its version counter moves with every in-place update, e.g. an optimizer step), so a model
that `w2v finetune` trains and evaluates in turn is never run with stale weights. These are
private torch operators: if they are missing or disagree with ``F.linear`` on a probe,
nothing is patched.
"""

from __future__ import annotations

import logging
import types
from typing import Any

logger = logging.getLogger("w2v")


def _packed_forward(self: Any, x: Any) -> Any:
    import torch

    weight = self.weight
    if torch.is_grad_enabled() or self.training or x.dtype != torch.bfloat16 or weight.dtype != torch.bfloat16 \
            or x.device.type != "cpu":
        return type(self).forward(self, x)
    key = (weight._version, weight.data_ptr())
    packed = self._w2v_packed
    if packed is None or packed[0] != key:
        packed = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
        self._w2v_packed = packed
    shape = x.shape
    out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, shape[-1]), packed[1], self.bias, "none", [], "")
    return out.reshape(*shape[:-1], out.shape[-1])


def _works() -> bool:
    """Whether the packed path exists here and agrees with F.linear on a probe."""
    import torch

    try:
        with torch.inference_mode():
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(37, 64, generator=generator).bfloat16()
            weight = torch.randn(96, 64, generator=generator).bfloat16()
            bias = torch.randn(96, generator=generator).bfloat16()
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
            got = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "").float()
            want = torch.nn.functional.linear(x.float(), weight.float(), bias.float())
        return bool(torch.allclose(got, want, rtol=2e-2, atol=1e-1))
    except Exception as e:  # noqa: BLE001 - an optional speed-up: any failure means "not here"
        logger.debug("packed bf16 linear layers unavailable: %s", e)
        return False


def pack_linears(model: Any) -> int:
    """Give the bf16 CPU nn.Linear layers of `model` the packed forward; returns how many."""
    import torch

    linears = [m for m in model.modules() if type(m) is torch.nn.Linear and not hasattr(m, "_w2v_packed")
               and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"]
    if not linears or not _works():
        return 0
    for module in linears:
        module._w2v_packed = None
        module.forward = types.MethodType(_packed_forward, module)
    logger.debug("packed %d bf16 linear layers", len(linears))
    return len(linears)
