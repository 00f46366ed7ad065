#!/usr/bin/env python
"""Benchmark `w2v finetune` against transformers' `Trainer`, in one run.

    .venv/bin/python scripts/bench_finetune.py                 # the README's table (~3 min, 2 cores)
    .venv/bin/python scripts/bench_finetune.py --arch base --steps 200 --batch-size 8   # a GPU

Both systems start from the same weights: a Wav2Vec2ForCTC built once from an architecture
(`--arch tiny`: configs/tiny.yaml's; `base`: ``Wav2Vec2Config()`` defaults, the
wav2vec2-base size) with a fixed seed and saved, with a character processor built from the
training transcripts by w2v's own `build_vocab`, to a temporary folder that both load as
`model.name`. Both read the same subset of the manifest's real recordings (16-48 kHz,
resampled with the same soundfile + soxr code), train with the same batch size, steps,
learning rate, linear warm-up and decay, AdamW betas/eps, gradient clipping, SpecAugment,
CTC (mean reduction, zero_infinity), frozen feature encoder (unless
`--train-feature-encoder`), fp32 and seed, and each runs as its own process:

- `w2v finetune --config bench.yaml` -- the real CLI, whole process;
- the `Trainer` recipe of transformers' examples/pytorch/speech-recognition/
  run_speech_recognition_ctc.py, run by this script in a child process: a dataset
  whose items are the feature extractor's `input_values` and the tokenizer's `labels`
  (decoded lazily with w2v_cli.audio.load_audio instead of `datasets`' Audio column, so no
  torchaudio/torchcodec), its `DataCollatorCTCWithPadding`, TrainingArguments with
  length-grouped sampling, the dataloader in the main process, default optimizer.

Fairness: the subset holds a multiple of the batch size and, where possible, divides
steps x batch size, so each system trains on every utterance the same number of times
and on exactly the same audio seconds; the table reports the audio each one trained on.
Data order differs (each system groups by length its own way), so single-step losses
differ; the loss curves are compared as means over windows of steps. The schedules differ
by one step during warm-up: the Trainer's first update has learning rate 0 (step/warmup),
w2v's has lr/warmup ((step + 1)/warmup).

Columns: steps; wall s (the whole process: interpreter start-up, imports, model loading,
w2v's data check, the final save); CPU s (user + system time of that process, steadier
than wall time on a shared machine); train s (first step to last optimizer step, as each
loop times itself); audio s trained on; training audio-s/s = audio s / train s; ratio to
the Trainer's audio-s/s; peak RSS (ru_maxrss of that process, from wait4); loss at the
first and the last step. With --repeats the systems alternate and each keeps its fastest run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MANIFEST = ROOT.parent / "shared" / "data" / "speech" / "manifest.tsv"
LEARNING_RATE = {"tiny": 1e-3, "base": 1e-4}  # base: the usual fine-tuning rate


# -- set-up --------------------------------------------------------------------------------


def architecture(arch: str) -> dict:
    """Wav2Vec2Config fields: configs/tiny.yaml's model.architecture, or {} (the defaults)."""
    if arch == "base":
        return {}
    from w2v_cli.config import load_config

    return dict(load_config(ROOT / "configs" / "tiny.yaml").model.architecture)


def pick_subset(utterances: list, batch_size: int, steps: int, seed: int = 0) -> list:
    """A seeded sample of the utterances: a multiple of `batch_size` (every batch full), and,
    if one at least half the manifest's size exists, one that divides steps x batch_size, so
    both systems see every utterance equally often and train on the same audio seconds."""
    shuffled = list(utterances)
    random.Random(seed).shuffle(shuffled)
    most = len(shuffled) - len(shuffled) % batch_size
    if most == 0:
        raise SystemExit(f"the manifest has {len(shuffled)} utterances, fewer than --batch-size {batch_size}")
    whole_epochs = [n for n in range(most, most // 2 - 1, -batch_size) if n and (steps * batch_size) % n == 0]
    return shuffled[: whole_epochs[0] if whole_epochs else most]


def prepare(work: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """Write the subset manifest, the shared starting model and the w2v config to `work`;
    returns (config path, audio seconds in the subset)."""
    import torch
    import yaml
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC
    from transformers.utils import logging as hf_logging

    from w2v_cli.config import Config
    from w2v_cli.data import load_dataset
    from w2v_cli.finetune import build_vocab, make_processor, target_text
    from w2v_cli.models import build_wav2vec2

    dataset = load_dataset(str(args.manifest))
    subset = pick_subset(dataset.utterances, args.batch_size, args.steps)
    manifest = work / "train.tsv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["id", "path", "text", "duration_s"])
        for utt in subset:
            writer.writerow([utt.id, str(Path(utt.path).resolve()), utt.text, utt.duration_s])
            Path(utt.path).read_bytes()  # warm the page cache: the first system is not penalised
    audio_s = sum(u.duration_s or 0.0 for u in subset)

    hf_logging.disable_progress_bar()
    arch = architecture(args.arch)
    model_dir = work / "start"
    texts = [target_text(u, Config()) for u in subset]
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                         # layer-norm models take a padding mask, group-norm ones do not
                                         return_attention_mask=arch.get("feat_extract_norm") == "layer")
    processor = make_processor(build_vocab(texts), model_dir, extractor, phonemes=False)
    torch.manual_seed(args.seed)
    model = build_wav2vec2(Wav2Vec2ForCTC, arch, vocab_size=len(processor.tokenizer),
                           pad_token_id=processor.tokenizer.pad_token_id)
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    params = sum(p.numel() for p in model.parameters())

    warmup = max(1, args.steps // 3)
    config = {
        "model": {"name": str(model_dir)},
        "data": {"train": str(manifest)},
        "inference": {"progress": False},
        "train": {
            "learning_rate": args.learning_rate or LEARNING_RATE[args.arch],
            "warmup_steps": warmup, "lr_schedule": "linear", "max_steps": args.steps,
            "batch_size": args.batch_size, "grad_accum": 1, "max_grad_norm": 1.0,
            "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8, "weight_decay": 0.0,
            "freeze_feature_encoder": not args.train_feature_encoder,
            "mask_time_prob": 0.05, "mask_feature_prob": 0.0, "layerdrop": 0.0,
            "dtype": "fp32", "seed": args.seed,
            "log_every": 1, "eval_every": 0, "save_every": 0,
        },
    }
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"data: {len(subset)} of {len(dataset.utterances)} utterances of {args.manifest}, "
          f"{audio_s:.1f} s of audio; model: {args.arch}, {params / 1e6:.2f} M parameters; "
          f"batch {args.batch_size}, {args.steps} steps, warm-up {warmup}, lr {config['train']['learning_rate']:g}",
          file=sys.stderr)
    return path, audio_s


# -- the Trainer side (runs in its own process) ---------------------------------------------


def run_trainer(config_path: Path, output_dir: Path) -> None:
    """transformers' CTC fine-tuning recipe on the data and settings of `config_path`;
    writes result.json (steps, train_s, audio_s, losses) to `output_dir`."""
    import torch
    from transformers import (
        Trainer,
        TrainerCallback,
        TrainingArguments,
        Wav2Vec2Processor,
    )
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from w2v_cli.audio import load_audio
    from w2v_cli.config import load_config
    from w2v_cli.data import load_dataset
    from w2v_cli.finetune import build_model, target_text

    config = load_config(config_path)
    options = config.train
    sample_rate = config.audio.sample_rate
    processor = Wav2Vec2Processor.from_pretrained(config.model.name)
    # The recipe's config.update(...) + from_pretrained + freeze_feature_encoder(), with the
    # same overrides w2v applies (vocab size, pad id, CTC mean/zero_infinity, SpecAugment).
    model = build_model(config, processor)
    utterances = load_dataset(config.data.train, config.data).utterances

    class SpeechDataset(torch.utils.data.Dataset):
        """The recipe's prepare_dataset(), done lazily per item."""

        def __len__(self) -> int:
            return len(utterances)

        def __getitem__(self, index: int) -> dict:
            utt = utterances[index]
            samples = load_audio(utt.path, sample_rate)
            return {"input_values": processor.feature_extractor(samples, sampling_rate=sample_rate).input_values[0],
                    "labels": processor.tokenizer(target_text(utt, config)).input_ids}

    audio_per_batch: list[float] = []  # seconds, in the order batches are collated

    def data_collator(features: list[dict]) -> dict:
        """The recipe's DataCollatorCTCWithPadding (padding="longest")."""
        audio_per_batch.append(sum(len(f["input_values"]) for f in features) / sample_rate)
        batch = processor.pad([{"input_values": f["input_values"]} for f in features], padding=True,
                              return_tensors="pt")
        labels_batch = processor.pad(labels=[{"input_ids": f["labels"]} for f in features], padding=True,
                                     return_tensors="pt")
        batch["labels"] = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        if "attention_mask" in batch:
            batch["attention_mask"] = batch["attention_mask"].to(torch.long)
        return batch

    class RecipeTrainer(Trainer):
        """Length-grouped sampling from precomputed lengths, as the recipe's `input_length`
        column gives them; without it the sampler would decode every recording at start."""

        def _get_train_sampler(self, train_dataset=None):
            lengths = [round((u.duration_s or 0.0) * sample_rate) for u in utterances]
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=lengths)

    class Timer(TrainerCallback):
        started = finished = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.finished = time.perf_counter()

    sampling = ({"train_sampling_strategy": "group_by_length"}
                if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__ else {"group_by_length": True})
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum, max_steps=options.max_steps,
        learning_rate=options.learning_rate, warmup_steps=options.warmup_steps, lr_scheduler_type="linear",
        adam_beta1=options.adam_beta1, adam_beta2=options.adam_beta2, adam_epsilon=options.adam_eps,
        weight_decay=options.weight_decay, max_grad_norm=options.max_grad_norm, seed=options.seed,
        logging_steps=1, dataloader_num_workers=0, report_to="none", disable_tqdm=True, **sampling,
    )
    timer = Timer()
    trainer = RecipeTrainer(model=model, args=args, train_dataset=SpeechDataset(), data_collator=data_collator,
                            processing_class=processor.feature_extractor, callbacks=[timer])
    trainer.train()
    trainer.save_model()  # as the recipe does after training
    steps = trainer.state.global_step
    result = {
        "steps": steps,
        "train_s": timer.finished - timer.started,
        # batches collated ahead of the last step (the dataloader looks one ahead) were not trained on
        "audio_s": sum(audio_per_batch[: steps * options.grad_accum]),
        "losses": [[row["step"], row["loss"]] for row in trainer.state.log_history if "loss" in row],
        "optimizer": str(args.optim.value if hasattr(args.optim, "value") else args.optim),
    }
    (output_dir / "result.json").write_text(json.dumps(result))


# -- running and reading the systems ------------------------------------------------------


@dataclass
class Run:
    system: str
    steps: int
    wall_s: float
    cpu_s: float  # user + system, whole process
    train_s: float
    audio_s: float
    peak_rss_mb: float
    optimizer: str
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)

    @property
    def audio_s_per_s(self) -> float:
        return self.audio_s / self.train_s


def run_process(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of `cmd`, its output in `log`; exits on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own ru_maxrss, not the max over all children
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}:\n{tail}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def run_w2v(config_path: Path, output_dir: Path) -> Run:
    w2v = Path(sys.executable).with_name("w2v")
    cli = [str(w2v)] if w2v.is_file() else [sys.executable, "-m", "w2v_cli.cli"]
    wall, cpu, rss = run_process(cli + ["finetune", "--config", str(config_path), "-o", str(output_dir)],
                            output_dir.with_suffix(".log"))
    state = json.loads((output_dir / "trainer_state.json").read_text())
    rows = [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines() if line]
    return Run("w2v finetune", state["step"], wall, cpu, state["elapsed_s"], state["audio_s"], rss, "torch.optim.AdamW",
               [(r["step"], r["loss"]) for r in rows])


def run_hf_trainer(config_path: Path, output_dir: Path) -> Run:
    output_dir.mkdir(parents=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--trainer-child", str(config_path), str(output_dir)]
    wall, cpu, rss = run_process(cmd, output_dir.with_suffix(".log"))
    result = json.loads((output_dir / "result.json").read_text())
    return Run("transformers Trainer", result["steps"], wall, cpu, result["train_s"], result["audio_s"], rss,
               f"optim={result['optimizer']} (its default)", [(int(s), float(v)) for s, v in result["losses"]])


# -- report -------------------------------------------------------------------------------


def window_means(losses: list[tuple[int, float]], edges: list[int]) -> list[float]:
    """Mean loss over steps (edges[i-1], edges[i]]."""
    means = []
    for low, high in zip([0] + edges, edges):
        values = [v for s, v in losses if low < s <= high]
        means.append(sum(values) / len(values) if values else float("nan"))
    return means


def report(w2v: Run, hf: Run) -> str:
    lines = [
        "| system | steps | wall s | CPU s | train s | audio s | training audio-s/s | × Trainer | peak RSS MB | loss first / last |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in (w2v, hf):
        first = run.losses[0][1] if run.losses else float("nan")
        last = run.losses[-1][1] if run.losses else float("nan")
        lines.append(
            f"| {run.system} | {run.steps} | {run.wall_s:.1f} | {run.cpu_s:.1f} | {run.train_s:.1f} | {run.audio_s:.1f} "
            f"| {run.audio_s_per_s:.1f} | {run.audio_s_per_s / hf.audio_s_per_s:.2f}× | {run.peak_rss_mb:.0f} "
            f"| {first:.2f} / {last:.2f} |"
        )
    steps = min(w2v.steps, hf.steps)
    edges = sorted({max(1, round(steps * k / 6)) for k in range(1, 7)})
    labels = [f"{low + 1}–{high}" if high > low + 1 else str(high) for low, high in zip([0] + edges, edges)]
    lines += ["", "| mean loss over steps | " + " | ".join(labels) + " |",
              "| --- |" + " ---: |" * len(labels)]
    for run in (w2v, hf):
        lines.append(f"| {run.system} | " + " | ".join(f"{m:.3f}" for m in window_means(run.losses, edges)) + " |")
    lines += ["", "Optimizers: " + "; ".join(f"{run.system} {run.optimizer}" for run in (w2v, hf)) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per system (default 30)")
    parser.add_argument("--batch-size", type=int, default=4, help="utterances per batch (default 4)")
    parser.add_argument("--arch", choices=["tiny", "base"], default="tiny",
                        help="tiny: configs/tiny.yaml's architecture (CPU); base: Wav2Vec2Config() defaults (GPU)")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST,
                        help=f"training recordings (default {DEFAULT_MANIFEST})")
    parser.add_argument("--learning-rate", type=float, default=0.0,
                        help="peak learning rate (default 1e-3 for tiny, 1e-4 for base)")
    parser.add_argument("--train-feature-encoder", action="store_true",
                        help="train the conv feature encoder too (default: frozen, as both recipes do)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per system, alternating; the fastest is kept")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, outputs)")
    parser.add_argument("--trainer-child", nargs=2, metavar=("CONFIG", "OUTPUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trainer_child:
        run_trainer(Path(args.trainer_child[0]), Path(args.trainer_child[1]))
        return

    work = Path(tempfile.mkdtemp(prefix="bench_finetune-"))
    try:
        config_path, _ = prepare(work, args)
        best: dict[str, Run] = {}
        for repeat in range(args.repeats):
            order = ("w2v", "trainer") if repeat % 2 == 0 else ("trainer", "w2v")
            for system in order:
                output_dir = work / f"{system}-{repeat}"
                run = run_w2v(config_path, output_dir) if system == "w2v" else run_hf_trainer(config_path, output_dir)
                print(f"{run.system}: {run.steps} steps, {run.train_s:.1f} s training, {run.wall_s:.1f} s wall, "
                      f"{run.cpu_s:.1f} s CPU, "
                      f"{run.audio_s_per_s:.1f} audio-s/s, peak RSS {run.peak_rss_mb:.0f} MB", file=sys.stderr)
                if system not in best or run.audio_s_per_s > best[system].audio_s_per_s:
                    best[system] = run
        print(report(best["w2v"], best["trainer"]))
    finally:
        if args.keep:
            print(f"working folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
