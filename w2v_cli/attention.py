"""A faster self-attention for bf16 inference on CPU.

torch's ``scaled_dot_product_attention`` on a CPU runs a flash-attention kernel: blocks of
queries against blocks of keys with an online softmax, each block a small GEMM. In bf16 on
this project's 2-core CPU (AMD EPYC, AVX-512 BF16, no AMX) it reached about a third of the
machine's bf16 GEMM rate: 40-43 ms for one wav2vec2-base layer's attention over a 20 s chunk
(12 heads x 999 frames x 64, one thread), where its two GEMMs are 3 GFLOP, ~15 ms at that
rate. Here it is ``softmax(q k^T * scale) v`` as two bf16 GEMMs and a softmax (computed in
float32 inside, written as bf16), one head at a time: one head's (frames, frames) scores,
2 MB for a 20 s chunk, stay in the cache between the GEMM, the softmax and the second GEMM.
All heads at once were 28 ms instead of 43 in isolation but no faster inside the model,
where the 24 MB score matrices went to memory and back (the softmax alone took 25 ms).

Measured (2026-12-02, CPU family 25; whole bf16 forward of wav2vec2-base with random
weights, best of 4 alternating runs): a 20 s chunk 1.10x faster on one thread and 1.11x on
two, a 7 s one 1.05x, a 3 s one the same. scripts/bench_transcribe.py in the same session,
old code and new: the 10-minute recording's forward 45.1 -> 40.0 s (÷ floor 1.45 -> 1.27);
the 79 short recordings within run-to-run noise (24.9 s before, 25.6 s after; by itself,
4 alternating runs: 27.3 and 26.7 s before, 25.7 and 26.5 s after).

What it costs: the scores are rounded to bf16 before the softmax (the flash kernel keeps
them in float32): about twice the flash kernel's deviation from float32 attention on random
inputs (relative 0.0044 vs 0.0022), both bf16 rounding. On the demo model, greedy WER on the
held-out hibari and espeak-ng sets (227 utterances each) was 0.3235 and 0.3609 with it,
0.3235 and 0.3605 with SDPA, 0.3235 and 0.3612 in float32.

Used only where it was measured: CPU, bf16, no gradient, eval mode, no dropout, no attention
weights wanted. Anything else -- training, float32, fp16, a GPU -- runs transformers' SDPA.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("w2v")

NAME = "w2v_cpu_bf16"  # registered in transformers' attention functions
SCORES_BYTES = 1 << 20  # score matrices computed at once: a few heads of a short input, one of a long


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
               dropout: float = 0.0, **kwargs: Any) -> tuple[Any, Any]:
    import torch

    if (torch.is_grad_enabled() or module.training or dropout or query.device.type != "cpu"
            or query.dtype != torch.bfloat16 or kwargs.get("output_attentions")):
        return _sdpa()(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    batch, heads, frames, _ = query.shape
    out = torch.empty((batch, frames, heads, value.shape[-1]), dtype=query.dtype)  # (batch, frames, heads, dim)
    queries = query * scaling
    keys = key.transpose(2, 3)
    # (batch or 1, heads or 1, frames, frames) -> a view per (item, head); bool: True = attend
    mask = None if attention_mask is None else attention_mask.expand(batch, heads, frames, frames)
    step = heads_at_once(heads, frames)
    for b in range(batch):
        by_head = out[b].transpose(0, 1)  # (heads, frames, dim) view of out
        for h in range(0, heads, step):  # a few heads at a time: their scores stay in cache
            scores = torch.matmul(queries[b, h:h + step], keys[b, h:h + step])  # new: changed in place below
            if mask is not None and mask.dtype == torch.bool:
                scores.masked_fill_(~mask[b, h:h + step], float("-inf"))
            elif mask is not None:
                scores += mask[b, h:h + step]
            torch.matmul(torch.softmax(scores, dim=-1), value[b, h:h + step], out=by_head[h:h + step])
    return out, None


def heads_at_once(heads: int, frames: int) -> int:
    """The most heads (a divisor of `heads`) whose bf16 score matrices fit in SCORES_BYTES."""
    fit = max(1, SCORES_BYTES // (2 * frames * frames))
    return max(n for n in range(1, heads + 1) if heads % n == 0 and n <= fit)


def _sdpa() -> Any:  # the only implementation use_fast_attention replaces
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS["sdpa"]


def use_fast_attention(model: Any) -> bool:
    """Route `model`'s attention through `_attention` when it is a bf16 model on CPU whose
    attention is transformers' "sdpa"; returns whether it does."""
    import torch

    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current == NAME:
        return True
    param = next(model.parameters(), None)
    if (config is None or current != "sdpa" or param is None or param.device.type != "cpu"
            or param.dtype != torch.bfloat16):
        return False
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        AttentionInterface.register(NAME, _attention)
        # The padding mask is built per implementation name: SDPA's, else padded frames of a
        # batch would be attended to (the model passes no mask for an unknown name).
        AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
        config._attn_implementation = NAME
    except Exception as e:  # noqa: BLE001 - an optional speed-up: any failure means "not here"
        logger.debug("fast CPU attention unavailable: %s", e)
        return False
    logger.debug("bf16 CPU attention: two GEMMs and a softmax (see attention.py)")
    return True
