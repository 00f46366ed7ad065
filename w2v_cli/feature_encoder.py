"""A faster inference forward for wav2vec2's convolutional feature encoder.

transformers runs the seven conv layers channels-first, a whole batch at a time: for a
20 s chunk the first layer alone makes a (512, 64000) activation, written once by the conv,
again by the group norm and again by the GELU, times the batch size. Here the same layers
run channels-last, one chunk at a time, as plain GEMMs, which are what a CPU does fastest:

- a conv is one GEMM of its input's windows with its filters, packed once for the GEMM
  kernel (packed_linear.py): a reshape when the kernel equals the stride, one copy of the
  overlapping windows otherwise (cheaper than one GEMM per tap that rewrites the output);
- the first layer's group norm (one group per channel, the wav2vec2-base family) is folded
  into that layer's weights: a channel's mean and variance over time are linear and
  quadratic in the filter, so they follow exactly from the mean and covariance of the
  10-sample input windows (computed in float64), and the conv, the norm and its affine
  become one GEMM with a bias;
- with its group norm folded in, the first layer's GELU is fused into that GEMM (a oneDNN
  post-op), so its (frames, 512) float32 output is written once, not three times;
- the first layer always runs in float32 from the float32 waveform, also for a bf16 or
  fp16 model: rounding the waveform itself to 8 bits of mantissa would add noise at about
  -54 dB to every input; the output is cast to the model's dtype after its activation;
- the whole stack runs on blocks of 2 s of output frames (see ``encode``), so no layer's
  activation is larger than a few MB.

The result equals transformers' forward up to float rounding (tests compare the logits).
It is used only under ``torch.no_grad``/``inference_mode`` on a model in eval mode; for
training or any other module layout the original forward runs.
"""

from __future__ import annotations

import logging
import types
from typing import Any

from . import packed_linear
from .checks import conv_frames

logger = logging.getLogger("w2v")


def _supported(encoder: Any) -> bool:
    from transformers.models.wav2vec2 import modeling_wav2vec2 as w2v

    layers = list(getattr(encoder, "conv_layers", []))
    if not layers or type(encoder) is not w2v.Wav2Vec2FeatureEncoder:
        return False
    first = layers[0]
    if isinstance(first, w2v.Wav2Vec2GroupNormConvLayer):
        rest_ok = all(type(layer) is w2v.Wav2Vec2NoLayerNormConvLayer for layer in layers[1:])
        groups_ok = first.layer_norm.num_groups == first.layer_norm.num_channels
        return rest_ok and groups_ok and first.conv.in_channels == 1
    return all(type(layer) is w2v.Wav2Vec2LayerNormConvLayer for layer in layers) and first.conv.in_channels == 1


def _activate(layer: Any, h: Any) -> Any:
    import torch

    if getattr(layer.activation, "act", None) is torch.nn.functional.gelu:  # transformers' "gelu"
        return torch.ops.aten.gelu_(h)  # in place: the activations here are the big ones
    return layer.activation(h)


def _conv(h: Any, conv: Any) -> Any:
    """Conv1d on a channels-last (time, channels) input: (time_out, out_channels), as one
    GEMM of the input's windows (rows of k * channels) with the packed filters."""
    k, s = conv.kernel_size[0], conv.stride[0]
    frames_in, channels = h.shape
    frames = (frames_in - k) // s + 1
    if k == s:
        windows = h[: frames * s].reshape(frames, k * channels)  # a view: rows are whole windows
    else:  # overlapping windows: one copy, then one GEMM (not k GEMMs that each rewrite the output)
        windows = h.as_strided((frames, k * channels), (s * channels, 1)).contiguous()
    weight = conv.weight  # (out, in, k)

    def filters() -> Any:  # (out, k * in), matching a window's layout (tap-major)
        return weight.permute(0, 2, 1).reshape(weight.shape[0], k * channels)

    return packed_linear.matmul(conv, windows, weight, filters, conv.bias)


def _first_layer_group_norm(x: Any, layer: Any) -> tuple[Any, Any]:
    """The first layer's conv (1 -> C channels), per-channel GroupNorm and affine as one
    GEMM over the whole chunk `x` (samples,) float32: float32 (weight (k, C), bias (C,))."""
    import torch

    conv, norm = layer.conv, layer.layer_norm
    k, s = conv.kernel_size[0], conv.stride[0]
    frames = (len(x) - k) // s + 1
    w64 = x.as_strided((frames, k), (s, 1)).double()  # (frames, k) windows
    mean = w64.mean(0)  # (k,)
    centred = w64 - mean
    cov = centred.t() @ centred / frames  # (k, k), biased, as GroupNorm's variance
    filters = conv.weight[:, 0, :].double()  # (C, k)
    variance = ((filters @ cov) * filters).sum(1)  # (C,) = w^T cov w; a conv bias cancels
    scale = norm.weight.double() / torch.sqrt(variance + norm.eps)
    bias = norm.bias.double() - scale * (filters @ mean)
    return (filters * scale[:, None]).float().t(), bias.float()


def _first_layer(x: Any, layer: Any, weight: Any, bias: Any, dtype: Any) -> Any:
    """The first layer on samples `x` (float32, a block of the chunk): (frames, C) in
    `dtype` after its norm and activation; the GEMM and norm run in float32."""
    import torch

    k, s = layer.conv.kernel_size[0], layer.conv.stride[0]
    frames = (len(x) - k) // s + 1
    windows = x.as_strided((frames, k), (s, 1))
    if isinstance(weight, _FusedFilters):  # conv + folded group norm + GELU: one pass over the output
        return torch.ops.mkldnn._linear_pointwise(windows.contiguous(), weight.packed, bias, "gelu", [],
                                                  "none").to(dtype)
    h = windows @ weight if bias is None else torch.addmm(bias, windows, weight)
    norm = getattr(layer, "layer_norm", None)
    if isinstance(norm, torch.nn.LayerNorm):  # layer-norm models; a group norm is folded in
        h = torch.nn.functional.layer_norm(h, norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps)
    return _activate(layer, h).to(dtype)


class _FusedFilters:
    """The first layer's (folded) filters packed for a oneDNN GEMM with the GELU fused in:
    the (frames, 512) float32 output, 13 MB per block, is then written once instead of three
    times (GEMM with bias, GELU, then read again for the cast). Same values as addmm + GELU
    (max abs difference 0.0 on a probe); 4.4 -> 3.6 ms per block on one thread."""

    def __init__(self, weight: Any):
        import torch

        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.t().contiguous(), None)


def _fusable(layer: Any, bias: Any) -> bool:
    import torch

    return (bias is not None and getattr(layer.activation, "act", None) is torch.nn.functional.gelu
            and not isinstance(getattr(layer, "layer_norm", None), torch.nn.LayerNorm)
            and packed_linear._available(torch.float32))


def _input_span(layers: Any, first: int, end: int) -> tuple[int, int]:
    """The samples [start, stop) that the encoder's output frames [first, end) are made from."""
    for layer in reversed(layers):
        k, s = layer.conv.kernel_size[0], layer.conv.stride[0]
        first, end = first * s, (end - 1) * s + k
    return first, end


BLOCK_FRAMES = 100  # output frames (2 s at 16 kHz) per block of the conv stack


def encode(encoder: Any, input_values: Any) -> Any:
    """The feature encoder's output for (batch, samples) audio: (batch, frames, channels)
    in the encoder's dtype, channels-last.

    One chunk at a time, and within a chunk BLOCK_FRAMES output frames at a time through
    all seven layers: the largest activation is then (6400, 512) -- 13 MB in float32, small
    enough for the allocator to reuse -- instead of (64000, 512) per 20 s chunk, which is
    mapped fresh from the OS (page faults on every touch) and goes to memory and back once
    per layer. The first layer's float32 output is cast to a bf16 model's dtype a block at a
    time, never as a whole. A block reads exactly the samples its frames depend on (the
    receptive fields overlap a little at block edges), so the output is the same as one pass
    over the chunk (up to float rounding of the GEMMs' other shapes)."""
    import torch

    layers = encoder.conv_layers
    dtype = layers[0].conv.weight.dtype
    first_layer = layers[0]
    group_norm = isinstance(getattr(first_layer, "layer_norm", None), torch.nn.GroupNorm)
    frames_for = conv_frames(tuple(layer.conv.kernel_size[0] for layer in layers),
                             tuple(layer.conv.stride[0] for layer in layers))
    outputs = []
    for x in input_values.float():
        x = x.contiguous()
        if group_norm:
            weight, bias = _first_layer_group_norm(x, first_layer)
            if _fusable(first_layer, bias):
                weight = _FusedFilters(weight)
        else:
            conv = first_layer.conv
            weight = conv.weight[:, 0, :].float().t()
            bias = None if conv.bias is None else conv.bias.float()
        frames = frames_for(len(x))
        out = torch.empty((frames, layers[-1].conv.out_channels), dtype=dtype)
        for first in range(0, frames, BLOCK_FRAMES):
            end = min(first + BLOCK_FRAMES, frames)
            start, stop = _input_span(layers, first, end)
            h = _first_layer(x[start:stop], first_layer, weight, bias, dtype)
            for layer in layers[1:]:
                h = _conv(h, layer.conv)
                if hasattr(layer, "layer_norm"):
                    norm = layer.layer_norm
                    h = torch.nn.functional.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
                h = _activate(layer, h)
            out[first:end] = h
        outputs.append(out)
    return torch.stack(outputs)


def prepare_for_inference(model: Any, fast_encoder: bool = True) -> bool:
    """Give a Wav2Vec2FeatureEncoder in `model` (a transformers CTC model) the forward
    above; returns whether it is in use (the model then takes float32 input in any dtype).

    The fast forward runs only when no gradient is wanted and the model is in eval mode;
    otherwise the class's own forward runs, so a model that is being fine-tuned and
    evaluated in between (``w2v finetune``) trains exactly as before. No parameter is
    touched: the patch is one instance attribute, and copies of the model keep working.
    """
    import torch

    base = getattr(model, "base_model", model)
    encoder = getattr(base, "feature_extractor", None)
    if not fast_encoder or encoder is None or not _supported(encoder):
        return False
    if getattr(encoder, "_w2v_fast", False):
        return True

    def forward(self: Any, input_values: Any) -> Any:
        if torch.is_grad_enabled() or self.training:
            return type(self).forward(self, input_values.to(self.conv_layers[0].conv.weight.dtype))
        # transformers transposes the result back to (batch, frames, channels).
        return encode(self, input_values).transpose(1, 2)

    encoder.forward = types.MethodType(forward, encoder)
    encoder._w2v_fast = True
    logger.debug("fast feature encoder installed")
    return True
