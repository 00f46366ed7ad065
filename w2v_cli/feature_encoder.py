"""A faster inference forward for wav2vec2's convolutional feature encoder.

transformers runs the seven conv layers channels-first, a whole batch at a time: for a
20 s chunk the first layer alone makes a (512, 64000) activation, written once by the conv,
again by the group norm and again by the GELU, times the batch size. Here the same layers
run channels-last, one chunk at a time, as plain GEMMs, which are what a CPU does fastest:

- a conv whose kernel equals its stride is a reshape and one GEMM; any other conv is one
  GEMM per kernel tap on a strided view of its input (no copy of the input);
- the first layer's group norm (one group per channel, the wav2vec2-base family) is folded
  into that layer's weights: a channel's mean and variance over time are linear and
  quadratic in the filter, so they follow exactly from the mean and covariance of the
  10-sample input windows (computed in float64), and the conv, the norm and its affine
  become one GEMM with a bias;
- the first layer always runs in float32 from the float32 waveform, also for a bf16 or
  fp16 model: rounding the waveform itself to 8 bits of mantissa would add noise at about
  -54 dB to every input; the output is cast to the model's dtype after its activation.

The result equals transformers' forward up to float rounding (tests compare the logits).
It is used only under ``torch.no_grad``/``inference_mode`` on a model in eval mode; for
training or any other module layout the original forward runs.
"""

from __future__ import annotations

import logging
import types
from typing import Any

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
    """Conv1d on a channels-last (time, channels) input: (time_out, out_channels)."""
    import torch

    k, s = conv.kernel_size[0], conv.stride[0]
    frames_in, channels = h.shape
    frames = (frames_in - k) // s + 1
    weight = conv.weight  # (out, in, k)
    if k == s:
        windows = h[: frames * s].reshape(frames, k * channels)  # a view: rows are whole windows
        packed = weight.permute(0, 2, 1).reshape(weight.shape[0], k * channels)
        if conv.bias is not None:
            return torch.addmm(conv.bias, windows, packed.t())
        return windows @ packed.t()
    # One GEMM per tap on a strided view (row stride s * channels is a valid BLAS lda).
    out = torch.mm(h[0::s][:frames], weight[:, :, 0].t())
    for j in range(1, k):
        out.addmm_(h[j::s][:frames], weight[:, :, j].t())
    if conv.bias is not None:
        out += conv.bias
    return out


def _first_layer_group_norm(x: Any, layer: Any) -> Any:
    """Conv (1 -> C channels) + per-channel GroupNorm + affine as one GEMM, in float32:
    x (samples,) float32 -> (frames, C) float32, before the activation."""
    import torch

    conv, norm = layer.conv, layer.layer_norm
    k, s = conv.kernel_size[0], conv.stride[0]
    frames = (len(x) - k) // s + 1
    windows = x.as_strided((frames, k), (s, 1)).contiguous()  # (frames, k)
    w64 = windows.double()
    mean = w64.mean(0)  # (k,)
    centred = w64 - mean
    cov = centred.t() @ centred / frames  # (k, k), biased, as GroupNorm's variance
    filters = conv.weight[:, 0, :].double()  # (C, k)
    variance = ((filters @ cov) * filters).sum(1)  # (C,) = w^T cov w; a conv bias cancels
    scale = norm.weight.double() / torch.sqrt(variance + norm.eps)
    bias = norm.bias.double() - scale * (filters @ mean)
    fused = (filters * scale[:, None]).float()  # (C, k)
    return torch.addmm(bias.float(), windows, fused.t())


def _first_layer_layer_norm(x: Any, layer: Any) -> Any:
    import torch

    conv = layer.conv
    k, s = conv.kernel_size[0], conv.stride[0]
    frames = (len(x) - k) // s + 1
    windows = x.as_strided((frames, k), (s, 1)).contiguous()
    weight = conv.weight[:, 0, :].float()
    out = windows @ weight.t() if conv.bias is None else torch.addmm(conv.bias.float(), windows, weight.t())
    norm = layer.layer_norm
    return torch.nn.functional.layer_norm(out, norm.normalized_shape, norm.weight.float(),
                                          norm.bias.float(), norm.eps)


def encode(encoder: Any, input_values: Any) -> Any:
    """The feature encoder's output for (batch, samples) audio: (batch, frames, channels)
    in the encoder's dtype, channels-last. One chunk at a time, so the big early
    activations exist for one chunk only."""
    import torch

    layers = encoder.conv_layers
    dtype = layers[0].conv.weight.dtype
    group_norm = hasattr(layers[0], "layer_norm") and isinstance(layers[0].layer_norm, torch.nn.GroupNorm)
    outputs = []
    for x in input_values.float():
        x = x.contiguous()
        h = _first_layer_group_norm(x, layers[0]) if group_norm else _first_layer_layer_norm(x, layers[0])
        h = _activate(layers[0], h).to(dtype)
        for layer in layers[1:]:
            h = _conv(h, layer.conv)
            if hasattr(layer, "layer_norm"):
                norm = layer.layer_norm
                h = torch.nn.functional.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            h = _activate(layer, h)
        outputs.append(h)
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
