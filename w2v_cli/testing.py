"""Helpers that build tiny random models and synthetic audio, for tests and scripts.

They live in the package (as lhotse's do) so scripts and users can make the same fixtures.
The tiny architecture follows transformers' own wav2vec2 tests: hidden 16, 2 layers,
2 heads, conv dims (32, 32, 32), kernels (8, 8, 8), strides (4, 4, 4) -- 64 samples per
frame, built in well under a second and saved with ``save_pretrained`` so tests load it
through the same code path as a user's model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")

TINY_ARCHITECTURE: dict[str, Any] = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=20,
    conv_dim=(32, 32, 32),
    conv_kernel=(8, 8, 8),
    conv_stride=(4, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    codevector_dim=16,
    proj_codevector_dim=16,
    num_codevectors_per_group=8,
    num_codevector_groups=2,
)


def write_vocab(folder: Path, letters: list[str] | None = None) -> dict[str, int]:
    """A character vocabulary in the layout of facebook/wav2vec2-base-960h."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for ch in letters or LETTERS:
        vocab.setdefault(ch, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    return vocab


def make_processor(folder: Path, letters: list[str] | None = None, do_lower_case: bool = False) -> Any:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    write_vocab(folder, letters)
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"),
        unk_token="<unk>",
        pad_token="<pad>",
        word_delimiter_token="|",
        do_lower_case=do_lower_case,
    )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
        return_attention_mask=False,
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def make_tiny_ctc_model(
    folder: str | Path,
    seed: int = 0,
    letters: list[str] | None = None,
    layer_norm: bool = False,
    **overrides: Any,
) -> Path:
    """Save a tiny random Wav2Vec2ForCTC and its processor to `folder`.

    layer_norm=False gives the group-norm feature encoder of wav2vec2-base (whose logits
    change when a batch is zero-padded); True gives the layer-norm, stable-layer-norm
    variant of the large and XLS-R models.
    """
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    folder = Path(folder)
    processor = make_processor(folder, letters)
    arch = dict(TINY_ARCHITECTURE)
    if layer_norm:
        arch.update(feat_extract_norm="layer", do_stable_layer_norm=True)
        processor.feature_extractor.return_attention_mask = True
    arch.update(overrides)
    config = Wav2Vec2Config(
        vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
        ctc_loss_reduction="sum",
        **arch,
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_pretraining_model(folder: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny random Wav2Vec2ForPreTraining and its feature extractor to `folder`."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    folder = Path(folder)
    config = Wav2Vec2Config(**{**TINY_ARCHITECTURE, **overrides})
    torch.manual_seed(seed)
    Wav2Vec2ForPreTraining(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def synth_speechlike(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Deterministic noise-modulated tones that look like speech to a model's statistics."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.5 * t)
    carrier = np.sin(2 * np.pi * np.cumsum(f0) / sample_rate)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6))
    noise = rng.normal(0, 0.05, n)
    return (0.3 * carrier * envelope + noise).astype(np.float32)
