"""A faster positional convolution for bf16 inference on CPU.

wav2vec2's transformer starts with a grouped convolution over time (wav2vec2-base: 768
channels in 16 groups of 48, 128 taps, weight-normalised). torch runs it as a oneDNN bf16
convolution at about half the machine's bf16 GEMM rate, after computing the weight norm
afresh on every call. Here it is one GEMM per group, channels-last (the layout the
transformer keeps its hidden states in, so no transposes): a group's overlapping input
windows (rows of taps x channels, one copy) times its filters, packed once for the GEMM
kernel (packed_linear.py) and re-packed only when the weights change.

Measured (2026-12-04, AMD EPYC of CPU family 25, AVX-512 BF16, one thread; wav2vec2-base
shapes): 250 frames (a 5 s input) 23.0 -> 12.4 ms, 1,000 frames (a 20 s chunk) 82.7 -> 55.7
ms; the GEMM floor is 11.6 and 46.5 ms. In float32 the same recipe was faster on 250 frames
(36.4 -> 28.5 ms) but slower on 1,000 (146 -> 214 ms), so float32 keeps torch's convolution.

Used only where it was measured: CPU, bf16, no gradient, eval mode, a plain wav2vec2
positional convolution (transformers' Wav2Vec2PositionalConvEmbedding or a subclass with the
same forward). The result equals the convolution's up to float rounding (bf16 GEMMs
accumulate in float32 either way; the test compares with a float32 reference).
"""

from __future__ import annotations

import logging
import types
from typing import Any

from . import packed_linear
from .conv_guard import TOLERANCE  # bf16 rounding is ~0.003 relative, a wrong kernel ~1
from .feature_encoder import _activate

logger = logging.getLogger("w2v")

ROWS = 256  # output frames per GEMM: a group's windows (256 x 6144 bf16, 3 MB) stay near the core


def _parameters_key(conv: Any) -> tuple:
    return tuple((p._version, p.data_ptr(), p.dtype) for p in conv.parameters())


def _packed(module: Any) -> tuple[list[Any], list[Any]]:
    """Per group: the packed (out/groups, taps * in/groups) filters and the bias slice;
    cached on `module` as ``_w2v_packed`` (so packed_linear.forget drops it too)."""
    import torch

    conv = module.conv
    key = _parameters_key(conv)
    cached = getattr(module, "_w2v_packed", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    weight = conv.weight.detach()  # (out, in/groups, taps); weight norm applied once here
    groups, taps = conv.groups, conv.kernel_size[0]
    out_g, in_g = weight.shape[0] // groups, weight.shape[1]
    filters, biases = [], []
    for g in range(groups):
        matrix = weight[g * out_g:(g + 1) * out_g].permute(0, 2, 1).reshape(out_g, taps * in_g).contiguous()
        filters.append(torch.ops.mkldnn._reorder_linear_weight(matrix, None))
        biases.append(conv.bias.detach()[g * out_g:(g + 1) * out_g].contiguous())  # _supported: a bias
    module._w2v_packed = (key, filters, biases)
    return filters, biases


def positional_conv(module: Any, hidden_states: Any) -> Any:
    """The module's output, (batch, frames, channels), for channels-last `hidden_states`."""
    import torch

    conv = module.conv
    taps, pad, groups = conv.kernel_size[0], conv.padding[0], conv.groups
    in_g = conv.in_channels // groups
    out_g = conv.out_channels // groups
    filters, biases = _packed(module)
    batch, frames, _ = hidden_states.shape
    keep = frames + 2 * pad - taps + 1 - module.padding.num_pad_remove
    out = torch.empty((batch, keep, conv.out_channels), dtype=hidden_states.dtype)
    for b in range(batch):
        padded = torch.nn.functional.pad(hidden_states[b], (0, 0, pad, pad))  # (frames + 2 pad, channels)
        for g in range(groups):
            channels = padded[:, g * in_g:(g + 1) * in_g].contiguous()
            for first in range(0, keep, ROWS):
                rows = min(ROWS, keep - first)
                windows = channels[first:].as_strided((rows, taps * in_g), (in_g, 1)).contiguous()
                out[b, first:first + rows, g * out_g:(g + 1) * out_g] = torch.ops.mkldnn._linear_pointwise(
                    windows, filters[g], biases[g], "none", [], "")
    return _activate(module, out)  # in place where it is transformers' "gelu"


def _forward(self: Any, hidden_states: Any) -> Any:
    import torch

    if (torch.is_grad_enabled() or self.training or hidden_states.device.type != "cpu"
            or hidden_states.dtype != torch.bfloat16 or hidden_states.dtype != self.conv.bias.dtype):
        return type(self).forward(self, hidden_states)
    return positional_conv(self, hidden_states)


def _supported(module: Any) -> bool:
    import torch
    from transformers.models.wav2vec2 import modeling_wav2vec2 as w2v

    conv = getattr(module, "conv", None)
    return (isinstance(module, w2v.Wav2Vec2PositionalConvEmbedding)
            and type(module).forward is w2v.Wav2Vec2PositionalConvEmbedding.forward
            and isinstance(conv, torch.nn.Conv1d) and conv.stride[0] == 1 and conv.dilation[0] == 1
            and conv.bias is not None and conv.padding_mode == "zeros"
            and isinstance(getattr(module, "padding", None), w2v.Wav2Vec2SamePadLayer))


def probe_error(module: Any) -> float:
    """Relative error of `positional_conv` against the convolution in float32 (the same
    bf16 weights cast up) on random input 9 frames long: a wrong kernel shows as ~1, bf16
    rounding as ~0.003 (conv_guard.py found oneDNN bf16 kernels that are wrong for some
    shapes; these GEMMs are other kernels, so they are checked the same way)."""
    import torch

    conv = module.conv
    x = torch.randn(1, 9, conv.in_channels, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    with torch.inference_mode():
        got = positional_conv(module, x).float()
        bias = conv.bias.detach().float()
        want = torch.nn.functional.conv1d(x.float().transpose(1, 2), conv.weight.detach().float(), bias,
                                          padding=conv.padding[0], groups=conv.groups)
        if module.padding.num_pad_remove:
            want = want[:, :, :-module.padding.num_pad_remove]
        want = module.activation(want).transpose(1, 2)
    return float(torch.linalg.norm(got - want) / torch.linalg.norm(want).clamp_min(1e-30))


def use_fast_positional_conv(model: Any) -> int:
    """Give the bf16 CPU positional convolutions of `model` the forward above; returns how
    many. Nothing is patched where the packed bf16 GEMMs are unavailable (packed_linear)."""
    import torch

    modules = [m for m in model.modules() if _supported(m) and m.conv.bias.dtype == torch.bfloat16
               and m.conv.bias.device.type == "cpu" and not getattr(m, "_w2v_fast", False)]
    if not modules or not packed_linear._available(torch.bfloat16):
        return 0
    installed = 0
    for module in modules:
        module._w2v_packed = None
        error = probe_error(module)
        if not error <= TOLERANCE:  # NaN too
            logger.debug("positional convolution left to torch: per-group GEMMs off by %.2f on a probe", error)
            continue
        module._w2v_fast = True
        module.forward = types.MethodType(_forward, module)
        installed += 1
    if installed:
        logger.debug("bf16 positional convolution as per-group GEMMs (see positional.py)")
    return installed
