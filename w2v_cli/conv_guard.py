"""Low-precision conv1d layers that this torch build computes wrongly run in float32.

torch 2.13's CPU build (oneDNN 3.12) returns garbage for some bf16 ``conv1d`` shapes: on this
project's Intel Xeon (AMX-BF16), 4, 8 or 12 input channels per group with a 16-tap
kernel gave a result whose error was larger than the result itself (relative error 1.04-1.14
against float32, where bf16 rounding gives 0.003), while 2, 16, 24, 32, 48 and 64 channels
per group were right. wav2vec2-base (48 per group, 128 taps), large (64) and the demo model
(24, 32 taps) are not hit; small custom architectures can be, through the positional
convolution, and then a bf16 transcript is noise. (The AMD EPYC without AMX that the project
ran on before did not show it: the bf16 test on the tests' tiny model, 8 channels per group,
passed there and failed on the Xeon.)

`guard_convs` probes each distinct conv1d shape of a bf16/fp16 CPU model once, with its own
weights on random input 9 output frames long, against float32; a shape that disagrees by more
than rounding can explain runs in float32 (input, weight and bias cast up, the result cast
back), with one log line naming the layers (info: results are right, --quiet hides it). Shapes
that agree are left alone; the probe costs once per process ~0.1 s for wav2vec2-base (most of
it the kernels' first-call set-up, 83-119 ms measured for its positional conv), milliseconds
for the feature encoder's convs. A probe cannot cover every input length (3 output frames did
not show the fault above), so it makes such a model right in the cases measured, not provably
everywhere.
"""

from __future__ import annotations

import logging
import types
from typing import Any

logger = logging.getLogger("w2v")

# With input and weights already rounded, a right bf16 kernel is off by its output's rounding
# (~0.003 relative); fp16 ~0.0004. A broken one by ~1.
TOLERANCE = 0.05

_PROBED: dict[tuple, float] = {}  # (in, out, kernel, stride, dilation, groups, padding, dtype) -> error


def _shape(conv: Any) -> tuple:
    return (conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.dilation[0],
            conv.groups, conv.padding[0], conv.weight.dtype)


def probe_error(conv: Any) -> float:
    """Relative error of `conv` computed in its dtype against float32 (the same weights, cast
    up), on random input 9 output frames long; probed once per shape and process. (The
    kernels' faults depend on the length too: 3 frames did not show the one above.)"""
    import torch

    key = _shape(conv)
    if key not in _PROBED:
        c_in, _, k, stride, dilation, groups, padding, dtype = key
        length = max(dilation * (k - 1) - 2 * padding, 0) + 8 * stride + 1
        x = torch.randn(1, c_in, length, generator=torch.Generator().manual_seed(0))
        options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        try:
            with torch.inference_mode():
                weight = conv.weight.detach()
                want = torch.nn.functional.conv1d(x.to(dtype).float(), weight.float(), **options)
                got = torch.nn.functional.conv1d(x.to(dtype), weight, **options)
            error = float(torch.linalg.norm(got.float() - want) / torch.linalg.norm(want).clamp_min(1e-30))
        except RuntimeError as e:  # a dtype this build cannot run at all: the forward will say so
            logger.debug("conv1d probe of %s failed: %s", key, e)
            error = 0.0
        _PROBED[key] = error
    return _PROBED[key]


def _float32_forward(self: Any, x: Any) -> Any:
    bias = None if self.bias is None else self.bias.float()
    return self._conv_forward(x.float(), self.weight.float(), bias).to(x.dtype)


def guard_convs(model: Any) -> list[str]:
    """Make the bf16/fp16 CPU Conv1d layers of `model` whose shape this torch computes
    wrongly run in float32; returns their names."""
    import torch

    patched, dtypes = [], set()
    for name, module in model.named_modules():
        if (not isinstance(module, torch.nn.Conv1d) or getattr(module, "_w2v_float32", False)
                or module.weight.device.type != "cpu"
                or module.weight.dtype not in (torch.bfloat16, torch.float16)
                or module.padding_mode != "zeros" or isinstance(module.padding, str)):
            continue
        error = probe_error(module)
        if not error <= TOLERANCE:  # NaN too
            module.forward = types.MethodType(_float32_forward, module)
            module._w2v_float32 = True
            patched.append(f"{name} (relative error {error:.2f} on a probe)")
            dtypes.add(str(module.weight.dtype).replace("torch.", ""))
    if patched:
        logger.info("torch %s computes %s conv1d of these shapes wrongly on this CPU; they run in "
                       "float32 instead: %s", torch.__version__, "/".join(sorted(dtypes)),
                       ", ".join(patched))
    return patched
