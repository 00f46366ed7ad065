"""`w2v pretrain`: wav2vec 2.0 contrastive pretraining of Wav2Vec2ForPreTraining.

From scratch (model.architecture) or continued from a checkpoint (model.name), on any data
source `w2v eval` reads (transcripts are not used). The loop, logging, checkpoints, resume
and accelerate support are training.py's, shared with `w2v finetune`; this module only
says how to batch audio and compute the loss:

- span masking with ``_compute_mask_indices`` (pretrain.mask_time_prob, mask_time_length)
  over the frames each utterance really has, sampled negatives from the same utterance;
- the Gumbel-softmax temperature decays from gumbel_temp_start to gumbel_temp_end;
- loss = (contrastive + diversity_loss_weight * diversity) / masked frames, plus
  feature_penalty * mean squared conv features (fairseq's ``features_pen``, which
  transformers' model does not compute).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .data import load_dataset
from .errors import ConfigError
from .models import build_wav2vec2, from_pretrained
from .training import (CONFIG_FILE, Task, TrainerState, dropout_overrides, load_padded, train,
                       training_entry)

logger = logging.getLogger("w2v")


def gumbel_temperature(step: int, config: Config) -> float:
    p = config.pretrain
    return max(p.gumbel_temp_start * p.gumbel_temp_decay**step, p.gumbel_temp_end)


def build_pretraining_model(config: Config) -> tuple[Any, Any]:
    """(Wav2Vec2ForPreTraining, feature extractor), fresh or from model.name."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    overrides = dict(
        mask_time_prob=config.pretrain.mask_time_prob,
        mask_time_length=config.pretrain.mask_time_length,
        num_negatives=config.pretrain.num_negatives,
        diversity_loss_weight=config.pretrain.diversity_loss_weight,
        layerdrop=config.train.layerdrop,
        **dropout_overrides(config.train.dropout),
    )
    if config.model.architecture:
        model = build_wav2vec2(Wav2Vec2ForPreTraining, config.model.architecture, config.train.seed, **overrides)
        layer_norm = model.config.feat_extract_norm == "layer"
        feature_extractor = Wav2Vec2FeatureExtractor(
            sampling_rate=config.audio.sample_rate, do_normalize=True, return_attention_mask=layer_norm)
    elif config.model.name:
        model = from_pretrained(Wav2Vec2ForPreTraining, config.model.name, config.model.revision, **overrides)
        feature_extractor = from_pretrained(Wav2Vec2FeatureExtractor, config.model.name, config.model.revision)
    else:
        raise ConfigError("set model.architecture (pretrain from scratch) or model.name (continue a checkpoint)")
    if config.train.freeze_feature_encoder and not config.model.architecture:
        model.freeze_feature_encoder()
    return model, feature_extractor


def pretrain_task(config: Config, model: Any, feature_extractor: Any, utterances: list) -> Task:
    import torch
    from transformers.models.wav2vec2.modeling_wav2vec2 import (
        _compute_mask_indices,
        _sample_negative_indices,
    )

    sr = config.audio.sample_rate
    options = config.pretrain
    use_mask = bool(getattr(feature_extractor, "return_attention_mask", False))
    features: dict[str, Any] = {}

    def keep_features(module: Any, inputs: Any, output: Any) -> None:
        features["conv"] = output  # (batch, conv_dim, frames)

    model.wav2vec2.feature_extractor.register_forward_hook(keep_features)

    def collate(indices: list[int], step: int) -> dict:
        inputs, sample_mask, sample_lengths = load_padded(utterances, indices, sr, feature_extractor.do_normalize)
        lengths = torch.tensor(sample_lengths)
        frames = int(model._get_feat_extract_output_lengths(torch.tensor(inputs.shape[1])))
        frame_lengths = model._get_feat_extract_output_lengths(lengths).tolist()
        batch_size = len(indices)
        frame_mask = np.zeros((batch_size, frames), dtype=bool)
        for row, n in enumerate(frame_lengths):
            frame_mask[row, :n] = True
        # numpy's global generator: seeded by the loop and restored on resume by accelerate
        mask = _compute_mask_indices((batch_size, frames), options.mask_time_prob, options.mask_time_length,
                                     attention_mask=torch.from_numpy(frame_mask), min_masks=2)
        mask &= frame_mask
        negatives = _sample_negative_indices((batch_size, frames), options.num_negatives, mask)
        batch = {
            "input_values": torch.from_numpy(inputs),
            "mask_time_indices": torch.from_numpy(mask),
            "sampled_negative_indices": torch.from_numpy(negatives).long(),
            "audio_s": float(lengths.sum()) / sr,
        }
        if use_mask:
            batch["attention_mask"] = torch.from_numpy(sample_mask)
        return batch

    def compute_loss(model: Any, batch: dict, step: int) -> tuple[Any, dict]:
        unwrapped = getattr(model, "module", model)
        temperature = gumbel_temperature(step, config)
        unwrapped.set_gumbel_temperature(temperature)
        device = next(model.parameters()).device
        out = model(**{k: v.to(device) for k, v in batch.items()})
        masked = batch["mask_time_indices"].sum().clamp(min=1).to(device)
        penalty = features["conv"].float().pow(2).mean()
        loss = out.loss / masked + options.feature_penalty * penalty
        extra = {
            "contrastive": float(out.contrastive_loss.detach()) / float(masked),
            "diversity": float(out.diversity_loss.detach()) / float(masked),
            "perplexity": float(out.codevector_perplexity.detach()),
            "masked_share": float(batch["mask_time_indices"].float().mean()),
            "temperature": temperature,
        }
        return loss, extra

    def save_model(model: Any, folder: Path) -> None:
        model.save_pretrained(folder)
        feature_extractor.save_pretrained(folder)
        (folder / CONFIG_FILE).write_text(config.to_yaml())

    durations = [u.duration_s or 0.0 for u in utterances]
    return Task("pretrain", model, durations, collate, compute_loss, save_model, metric="loss")


@training_entry  # checks train.output_dir first; flushes denormals for the whole run
def pretrain(config: Config, resume: bool | None = None, stop_after: int | None = None) -> TrainerState:
    """Pretrain as the config says; returns the final trainer state."""
    if not config.data.train:
        raise ConfigError("data.train is not set: give a dataset spec (manifest, folder or hf:...) "
                          "in the config or with --set data.train=...")
    dataset = load_dataset(config.data.train, config.data)
    for uid, reason in dataset.skipped[:20]:
        logger.warning("%s: skipped %s: %s", dataset.name, uid, reason)
    model, feature_extractor = build_pretraining_model(config)
    frames_needed = 2 * config.pretrain.mask_time_length + 2
    usable = []
    for utt in dataset.utterances:
        samples = int((utt.duration_s or 0) * config.audio.sample_rate)
        if int(model._get_feat_extract_output_lengths(samples)) >= frames_needed:
            usable.append(utt)
    if len(usable) < len(dataset.utterances):
        logger.warning("leaving out %d utterances too short to mask", len(dataset.utterances) - len(usable))
    if not usable:
        raise ConfigError(f"no utterance of {dataset.name} is long enough to pretrain on")
    logger.info("pretrain: %d utterances, %.2f h", len(usable), sum(u.duration_s or 0 for u in usable) / 3600)
    return train(pretrain_task(config, model, feature_extractor, usable), config, resume, stop_after)
