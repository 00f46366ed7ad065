"""`w2v finetune`: CTC fine-tuning of a pretrained (or fresh) wav2vec2.

Reads data through the same sources as `w2v eval` (data.py), builds or reuses a
vocabulary, checks the data before the first step (checks.py, as `w2v check-data`),
then hands a Task to the shared loop in training.py. Evaluation during training goes
through evaluate.py, so the WER printed here is the WER `w2v eval` would print.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .ctc import encode_transcript
from .data import Dataset, Utterance, load_dataset
from .errors import ConfigError, DataError
from .models import LoadedModel, build_wav2vec2, from_pretrained, local_path
from .phones import fold_phones
from .text import normalize_text
from .training import (CONFIG_FILE, Task, TrainerState, dropout_overrides, load_padded, train,
                       training_entry)

logger = logging.getLogger("w2v")

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # <pad> (id 0) is also the CTC blank
WORD_DELIMITER = "|"


# -- targets ------------------------------------------------------------------------------


def target_text(utt: Utterance, config: Config) -> str:
    """What the model learns to emit for `utt`: normalised characters, or folded phones
    separated by spaces when data.labels is 'phonemes'."""
    if config.data.labels == "phonemes":
        if not utt.phones:
            raise DataError(f"{utt.id}: data.labels is 'phonemes' but the source has no phone labels (.PHN)")
        return " ".join(fold_phones(utt.phones))
    return normalize_text(utt.text, config.text)


def build_vocab(texts: list[str], phonemes: bool = False) -> dict[str, int]:
    """Characters of the training transcripts (space becomes '|'), or phone symbols."""
    symbols: set[str] = set()
    for text in texts:
        symbols.update(text.split() if phonemes else text.replace(" ", WORD_DELIMITER))
    ordered = SPECIALS + ([] if phonemes else [WORD_DELIMITER]) + sorted(symbols - {WORD_DELIMITER})
    return {s: i for i, s in enumerate(ordered)}


def make_processor(vocab: dict[str, int], folder: Path, feature_extractor: Any, phonemes: bool) -> Any:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2PhonemeCTCTokenizer, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    if phonemes:
        tokenizer = Wav2Vec2PhonemeCTCTokenizer(str(folder / "vocab.json"), do_phonemize=False,
                                                phone_delimiter_token=" ", word_delimiter_token=None)
    else:
        tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token=WORD_DELIMITER)
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def base_processor(config: Config) -> tuple[Any, Any]:
    """(feature extractor, processor or None) of the starting model, if it has them."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    name = config.model.name
    if not name:
        return Wav2Vec2FeatureExtractor(sampling_rate=config.audio.sample_rate, do_normalize=True), None
    try:
        processor = from_pretrained(Wav2Vec2Processor, name, config.model.revision)
        return processor.feature_extractor, processor
    except Exception:  # noqa: BLE001 - a pretraining checkpoint has no tokenizer; transformers
        pass  # raises OSError, ValueError or TypeError depending on what is missing
    return from_pretrained(Wav2Vec2FeatureExtractor, name, config.model.revision), None


def choose_processor(config: Config, texts: list[str], work_dir: Path) -> Any:
    """The base model's processor when its vocabulary covers the data, else a new one."""
    phonemes = config.data.labels == "phonemes"
    feature_extractor, processor = base_processor(config)
    if processor is not None and not phonemes:
        vocab = processor.tokenizer.get_vocab()
        needed = {ch for t in texts for ch in t.replace(" ", processor.tokenizer.word_delimiter_token or "|")}
        if needed <= set(vocab):
            logger.info("using %s's own vocabulary (%d tokens)", config.model.name, len(vocab))
            return processor
        logger.info("%s's vocabulary lacks %s: building one from the training transcripts",
                    config.model.name, "".join(sorted(needed - set(vocab)))[:40])
    if config.model.architecture and (config.model.architecture.get("feat_extract_norm") == "layer"):
        feature_extractor.return_attention_mask = True
    vocab = build_vocab(texts, phonemes)
    logger.info("vocabulary: %d tokens built from the training transcripts", len(vocab))
    return make_processor(vocab, work_dir, feature_extractor, phonemes)


# -- model --------------------------------------------------------------------------------


def build_model(config: Config, processor: Any) -> Any:
    """Wav2Vec2ForCTC from model.architecture (fresh) or model.name, sized to the vocabulary."""
    from transformers import Wav2Vec2ForCTC

    tokenizer = processor.tokenizer
    overrides = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        ctc_loss_reduction="mean",  # per-target-length mean: batch-size independent
        ctc_zero_infinity=True,  # an infeasible item gives 0, not inf, in a mixed batch
        mask_time_prob=config.train.mask_time_prob,
        mask_time_length=config.train.mask_time_length,
        mask_feature_prob=config.train.mask_feature_prob,
        mask_feature_length=config.train.mask_feature_length,
        layerdrop=config.train.layerdrop,
        **dropout_overrides(config.train.dropout),
    )
    if config.model.architecture:
        model = build_wav2vec2(Wav2Vec2ForCTC, config.model.architecture, config.train.seed, **overrides)
    else:
        model = from_pretrained(Wav2Vec2ForCTC, config.model.name, config.model.revision,
                                ignore_mismatched_sizes=True, **overrides)
    if config.train.freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model


# -- the task -----------------------------------------------------------------------------


@dataclass
class CtcData:
    utterances: list[Utterance]
    labels: list[list[int]]


def encode_labels(dataset: Dataset, processor: Any, config: Config) -> CtcData:
    tokenizer = processor.tokenizer
    phonemes = config.data.labels == "phonemes"
    utterances, labels = [], []
    for utt in dataset.utterances:
        text = target_text(utt, config)
        # encode_transcript adapts case to a single-case base vocabulary (wav2vec2-base-960h)
        ids = tokenizer(text).input_ids if phonemes else encode_transcript(tokenizer, text, unk=True)[1]
        utterances.append(utt)
        labels.append(ids)
    return CtcData(utterances, labels)


def ctc_task(config: Config, model: Any, processor: Any, train_data: CtcData,
             eval_set: Dataset | None) -> Task:
    import torch

    sr = config.audio.sample_rate
    fe = processor.feature_extractor
    use_mask = bool(getattr(fe, "return_attention_mask", False))
    utterances, labels = train_data.utterances, train_data.labels

    def collate(indices: list[int], step: int) -> dict:
        inputs, mask, lengths = load_padded(utterances, indices, sr, fe.do_normalize)
        width = max(len(labels[i]) for i in indices)
        target = np.full((len(indices), width), -100, dtype=np.int64)  # -100: ignored by the loss
        for row, i in enumerate(indices):
            target[row, : len(labels[i])] = labels[i]
        batch = {"input_values": torch.from_numpy(inputs), "labels": torch.from_numpy(target),
                 "audio_s": sum(lengths) / sr}
        if use_mask:  # group-norm models (wav2vec2-base) are trained without, as in the HF recipe
            batch["attention_mask"] = torch.from_numpy(mask)
        return batch

    def compute_loss(model: Any, batch: dict, step: int) -> tuple[Any, dict]:
        device = next(model.parameters()).device
        out = model(**{k: v.to(device) for k, v in batch.items()})
        return out.loss, {}

    def save_model(model: Any, folder: Path) -> None:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        (folder / CONFIG_FILE).write_text(config.to_yaml())

    evaluate_fn = None
    if eval_set is not None:
        from .evaluate import evaluate

        def evaluate_fn(model: Any, step: int) -> dict:
            import copy

            from .packed_linear import forget

            forget(model)  # the fused optimizer changed the weights without telling the packed copies
            loaded = LoadedModel(f"{config.train.output_dir}@{step}", model, processor,
                                 str(next(model.parameters()).device), next(model.parameters()).dtype)
            quiet = copy.deepcopy(config)
            quiet.inference.progress = False
            if config.data.labels == "phonemes":  # score folded phones as words: PER
                quiet.text.case, quiet.text.remove_punctuation = "keep", False
            result = evaluate(loaded, eval_set, quiet)
            key = "per" if config.data.labels == "phonemes" else "wer"
            return {key: result.wer, "cer": result.cer, "utterances": result.utterances}

    durations = [u.duration_s or 0.0 for u in utterances]
    metric = "per" if config.data.labels == "phonemes" else "wer"
    return Task("finetune", model, durations, collate, compute_loss, save_model, evaluate_fn, metric)


# -- entry point --------------------------------------------------------------------------


def preflight(dataset: Dataset, processor: Any, model: Any, config: Config, texts: dict[str, str]) -> Dataset:
    """The `w2v check-data` checks on a dataset before the first step: unreadable audio,
    empty transcripts, characters outside the vocabulary, utterances too short for their
    labels under CTC. data.on_bad_item decides: skip them, or stop."""
    import torch

    from .checks import check_dataset, vocab_characters

    tokenizer = processor.tokenizer
    phonemes = config.data.labels == "phonemes"
    vocab = None if phonemes else vocab_characters(tokenizer.get_vocab(), tokenizer.word_delimiter_token or "|")

    def frames_for(samples: int) -> int:
        return int(model._get_feat_extract_output_lengths(torch.tensor(samples)).item())

    def to_labels(text: str) -> list:
        return tokenizer(text).input_ids

    # Check the text the model will learn, not the raw transcript.
    view = Dataset(dataset.name, [Utterance(u.id, texts[u.id], u.path, u.read, u.duration_s, u.phones)
                                  for u in dataset.utterances], list(dataset.skipped))
    report = check_dataset(view, vocab=vocab, to_labels=to_labels, frames_for=frames_for,
                           sample_rate=config.audio.sample_rate, progress=config.inference.progress)
    errors = report.errors()
    if not errors:
        logger.info("data check %s: %d utterances, no problems", dataset.name, report.utterances)
        return dataset
    for problem in errors[:20]:
        logger.warning("  %s: %s (%s)", problem.id, problem.message, problem.kind)
    if len(errors) > 20:
        logger.warning("  ... and %d more", len(errors) - 20)
    if config.data.on_bad_item == "stop":
        raise DataError(f"data check of {dataset.name}: {len(errors)} problems (listed above); fix them, "
                        f"or set data.on_bad_item=skip to leave those utterances out")
    # A duplicate id's second copy was already left out by the reader: the first stays.
    bad = {p.id for p in errors if p.kind != "duplicate_id"}
    kept = [u for u in dataset.utterances if u.id not in bad]
    logger.warning("data check %s: leaving out %d of %d utterances (data.on_bad_item=skip)",
                   dataset.name, len(dataset.utterances) - len(kept), len(dataset.utterances))
    if not kept:
        raise DataError(f"data check of {dataset.name}: no usable utterance is left")
    return Dataset(dataset.name, kept, dataset.skipped)


@training_entry  # checks train.output_dir first; flushes denormals for the whole run
def finetune(config: Config, resume: bool | None = None, stop_after: int | None = None) -> TrainerState:
    """Fine-tune for CTC as the config says; returns the final trainer state."""
    if not config.data.train:
        raise ConfigError("data.train is not set: give a dataset spec (manifest, folder or hf:...) "
                          "in the config or with --set data.train=...")
    if not config.model.name and not config.model.architecture:
        raise ConfigError("set model.name (a hub id or folder to start from) or model.architecture")
    output_dir = Path(config.train.output_dir)
    if local_path(config.model.name or "") is not None and Path(config.model.name).resolve() == output_dir.resolve():
        raise ConfigError("model.name and train.output_dir are the same folder; pick another output_dir")
    train_set = load_dataset(config.data.train, config.data)
    eval_set = load_dataset(config.data.eval, config.data) if config.data.eval else None
    _report_skipped(train_set)
    if eval_set is not None:
        _report_skipped(eval_set)
    texts = {u.id: target_text(u, config) for u in train_set.utterances}
    resuming = resume is not False and (output_dir / "vocab.json").is_file()
    if resuming:  # keep the vocabulary the checkpoint was trained with
        from transformers import Wav2Vec2Processor

        processor = Wav2Vec2Processor.from_pretrained(str(output_dir))
    else:
        processor = choose_processor(config, list(texts.values()), output_dir / ".vocab")
    model = build_model(config, processor)
    train_set = preflight(train_set, processor, model, config, texts)
    if eval_set is not None:
        eval_texts = {u.id: target_text(u, config) for u in eval_set.utterances}
        eval_set = preflight(eval_set, processor, model, config, eval_texts)
    data = encode_labels(train_set, processor, config)
    logger.info("train: %d utterances, %.2f h; eval: %s", len(data.utterances), train_set.duration_s / 3600,
                f"{len(eval_set.utterances)} utterances" if eval_set else "none")
    return train(ctc_task(config, model, processor, data, eval_set), config, resume, stop_after)


def _report_skipped(dataset: Dataset) -> None:
    for uid, reason in dataset.skipped[:20]:
        logger.warning("%s: skipped %s: %s", dataset.name, uid, reason)
