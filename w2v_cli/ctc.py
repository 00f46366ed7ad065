"""The CTC loss of a transcript given the audio, under a CTC model.

The figure is transformers' own: ``model(input_values, labels=labels).loss`` with the
model's ``ctc_loss_reduction`` ('sum' for wav2vec2-base-960h) or 'mean'. We also say
whether the alignment is feasible at all: CTC needs one frame per label plus one blank
between each pair of equal adjacent labels, otherwise the loss is infinite.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .models import LoadedModel

logger = logging.getLogger("w2v")


@dataclass
class CtcLossResult:
    loss: float | None  # None when infinite (an infeasible alignment)
    reduction: str  # sum|mean
    frames: int  # logits frames the model emits for the audio
    labels: int  # label tokens of the transcript
    repeats: int  # adjacent equal labels, each needing a blank between them
    feasible: bool  # frames >= labels + repeats
    text: str  # the transcript as scored (after case adaptation)


def min_frames(labels: list[int]) -> int:
    """Frames CTC needs for `labels`: one each, plus a blank between adjacent repeats."""
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def output_frames(model, samples: int) -> int:
    """Logits frames the model's conv feature encoder emits for `samples` input samples."""
    import torch

    return int(model._get_feat_extract_output_lengths(torch.tensor(samples)).item())


def encode_transcript(tokenizer, text: str, unk: bool = False) -> tuple[str, list[int]]:
    """Label ids of `text`; characters outside the vocabulary are an error unless `unk`.

    A vocabulary with only upper-case letters (wav2vec2-base-960h) gets the text upper-cased,
    and one with only lower-case letters gets it lower-cased: a case mismatch is not a
    transcript error.
    """
    vocab = tokenizer.get_vocab()
    letters = [t for t in vocab if len(t) == 1 and t.isalpha()]
    if letters and all(t.isupper() for t in letters if t.lower() != t.upper()) and text != text.upper():
        text = text.upper()
    elif letters and all(t.islower() for t in letters if t.lower() != t.upper()) and text != text.lower():
        text = text.lower()
    text = " ".join(text.split())
    delimiter = tokenizer.word_delimiter_token or "|"
    missing = sorted({ch for ch in text if (delimiter if ch == " " else ch) not in vocab})
    if missing and not unk:
        shown = " ".join(repr(ch) for ch in missing)
        raise DataError(
            f"the transcript has characters the model's vocabulary lacks: {shown}; "
            f"remove them, or pass --unk to map them to {tokenizer.unk_token}"
        )
    ids = tokenizer(text).input_ids
    return text, ids


def ctc_loss(
    loaded: LoadedModel, audio: np.ndarray, text: str, reduction: str | None = None, unk: bool = False
) -> CtcLossResult:
    """CTC loss of `text` for `audio` (float32 mono at the model's rate, shape (samples,))."""
    import torch

    from .inference import normalize

    model = loaded.model
    reduction = reduction or model.config.ctc_loss_reduction
    if reduction not in ("sum", "mean"):
        raise DataError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    text, ids = encode_transcript(loaded.processor.tokenizer, text, unk)
    if not ids:
        raise DataError("the transcript is empty; give the words spoken in the audio")
    x = normalize(audio) if loaded.do_normalize else audio
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(loaded.device, loaded.dtype)
    labels = torch.tensor([ids], device=loaded.device)
    saved = (model.config.ctc_loss_reduction, model.config.ctc_zero_infinity)
    model.config.ctc_loss_reduction, model.config.ctc_zero_infinity = reduction, False
    try:
        with torch.inference_mode():
            out = model(inputs, labels=labels)
    finally:
        model.config.ctc_loss_reduction, model.config.ctc_zero_infinity = saved
    loss = float(out.loss)
    frames = int(out.logits.shape[1])
    needed = min_frames(ids)
    return CtcLossResult(
        loss=loss if math.isfinite(loss) else None,
        reduction=reduction,
        frames=frames,
        labels=len(ids),
        repeats=needed - len(ids),
        feasible=frames >= needed,
        text=text,
    )
