"""The training skeleton shared by `w2v finetune` and `w2v pretrain`.

What both loops need and nothing task-specific: accelerate set-up (one CPU, one GPU, or
many processes through `accelerate launch` / `torchrun`), length-grouped batches sharded
across processes, AdamW with warm-up and decay, one fixed-format log line per interval
(stderr + JSONL), atomic checkpoints with resume to the same weights, SIGINT/SIGTERM
handling, and the loss/WER plot at the end.

The task modules (finetune.py, pretrain.py) supply a model, a dataset of Utterances, a
`collate` and a `compute_loss`, and optionally an `evaluate` callback; `train()` does the
rest, top to bottom.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import pickle
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, TrainConfig
from .errors import ConfigError, W2VError

logger = logging.getLogger("w2v")

CHECKPOINTS = "checkpoints"  # output_dir/checkpoints/step-000500/
STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "w2v_config.yaml"


# -- batches ------------------------------------------------------------------------------


def length_grouped_batches(
    durations: list[float], options: TrainConfig, epoch: int, seed: int
) -> list[list[int]]:
    """Batches of utterance indices with similar durations, in a shuffled order that
    depends only on (seed, epoch), so a resumed run sees the same batches.

    Utterances are shuffled, cut into groups of 50 batches' worth, each group sorted by
    duration and cut into batches (by count, or by total seconds when batch_audio_s > 0);
    then the batch order is shuffled. Less padding, still random.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(durations)))
    rng.shuffle(order)
    per_batch = max(1, options.batch_size)
    group = per_batch * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        members = sorted(order[start : start + group], key=lambda i: durations[i])
        if options.batch_audio_s > 0:
            batch: list[int] = []
            total = 0.0
            for i in members:
                if batch and total + durations[i] > options.batch_audio_s:
                    batches.append(batch)
                    batch, total = [], 0.0
                batch.append(i)
                total += durations[i]
            if batch:
                batches.append(batch)
        else:
            batches.extend(members[i : i + per_batch] for i in range(0, len(members), per_batch))
    rng.shuffle(batches)
    return batches


def shard(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This process's share: every world-th batch, truncated so all ranks take the same
    number of steps (DDP hangs if one rank runs an extra backward)."""
    usable = len(batches) - len(batches) % world
    return batches[rank:usable:world]


def load_padded(utterances: list, indices: list[int], sample_rate: int, normalize_audio: bool) -> tuple:
    """Read utterances `indices` and zero-pad them into one batch.

    Returns (inputs (batch, samples) float32, mask (batch, samples) int64 with 1 on real
    samples, lengths list[int]). Each wave is normalised on its own before padding, as the
    feature extractor does, so padding never changes its statistics.
    """
    from .inference import normalize

    waves = [utterances[i].load(sample_rate) for i in indices]
    if normalize_audio:
        waves = [normalize(w) for w in waves]
    lengths = [len(w) for w in waves]
    inputs = np.zeros((len(waves), max(lengths)), dtype=np.float32)
    mask = np.zeros((len(waves), max(lengths)), dtype=np.int64)
    for row, w in enumerate(waves):
        inputs[row, : len(w)] = w
        mask[row, : len(w)] = 1
    return inputs, mask, lengths


# -- model overrides ----------------------------------------------------------------------


DROPOUT_FIELDS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout")


def dropout_overrides(dropout: float | None) -> dict[str, float]:
    """Wav2Vec2Config fields set by `train.dropout` (null: none, the model keeps its own)."""
    if dropout is None:
        return {}
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"train.dropout must be at least 0 and below 1, got {dropout}; "
                          "use null to keep the model's own dropout")
    return {name: dropout for name in DROPOUT_FIELDS}


# -- schedule -----------------------------------------------------------------------------


def lr_factor(step: int, total: int, options: TrainConfig) -> float:
    """Linear warm-up to 1, then linear or cosine decay to 0 over the remaining steps."""
    if options.warmup_steps and step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    if options.lr_schedule == "constant":
        return 1.0
    progress = (step - options.warmup_steps) / max(1, total - options.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if options.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress


# -- state, logs, checkpoints -------------------------------------------------------------


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch already consumed (this rank's share)
    skipped_nonfinite: int = 0  # batches whose loss was not finite, never trained on
    audio_s: float = 0.0  # seconds of audio trained on (this rank)
    elapsed_s: float = 0.0
    best_metric: float | None = None  # eval WER (lower is better)
    best_step: int | None = None
    history: list[dict] = field(default_factory=list)  # eval results by step
    stopped_by: str | None = None  # why the last run stopped early: a signal's name or "stop_after"
    # Unix times: when the run began at step 0 (kept on resume; None for runs older than the field)
    # and when this state was last saved. Its lifetime, for telling which logged pauses of a
    # shared machine (scripts/pause_training.sh) fell inside it.
    started_at: float | None = None
    updated_at: float | None = None

    def save(self, path: Path) -> None:
        self.updated_at = round(time.time(), 1)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> TrainerState:
        return cls(**json.loads(path.read_text()))


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).is_file())


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place; an older one of the same name goes first."""
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def weights_digest(model: Any) -> str:
    """A short hash of all parameters, to compare processes or runs."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class StopRequested:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step, so the loop can
    save a checkpoint and exit cleanly instead of dying mid-write."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequested:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside some test runners)
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning("received %s: finishing this step, saving a checkpoint, then exiting "
                       "(send again to stop at once)", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.signal is not None


def plot_history(output_dir: Path, log_rows: list[dict], evals: list[dict], metric: str) -> Path | None:
    """training.png: training loss and eval `metric` against steps."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no plot")
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([r["step"] for r in log_rows], [r["loss"] for r in log_rows], color="tab:blue", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss", color="tab:blue")
    if any(r["loss"] > 0 for r in log_rows):
        ax.set_yscale("log")
    if evals:
        ax2 = ax.twinx()
        ax2.plot([e["step"] for e in evals], [e[metric] for e in evals], "o-", color="tab:red", label=f"eval {metric}")
        ax2.set_ylabel(f"eval {metric}", color="tab:red")
    ax.set_title(output_dir.name)
    fig.tight_layout()
    path = output_dir / "training.png"
    tmp = output_dir / ".training.png.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# -- the loop -----------------------------------------------------------------------------


@dataclass
class Task:
    """What a training task provides to `train`."""

    name: str  # "finetune" or "pretrain", for logs
    model: Any  # torch.nn.Module (not yet prepared)
    durations: list[float]  # seconds per training item
    collate: Callable[[list[int], int], dict]  # (item indices, step) -> batch of tensors (+ "audio_s")
    compute_loss: Callable[[Any, dict, int], tuple[Any, dict]]  # (model, batch, step) -> (loss, extra log fields)
    save_model: Callable[[Any, Path], None]  # (unwrapped model, folder) -> writes an inference-ready model
    evaluate: Callable[[Any, int], dict] | None = None  # (unwrapped model, step) -> {"wer": ..., ...}
    metric: str = "wer"  # key of evaluate's result used to pick the best checkpoint (lower is better)
    trainable: Callable[[Any], list] | None = None  # parameters to optimise (default: those requiring grad)


def mixed_precision(dtype: str, device: str) -> str:
    """accelerate's `mixed_precision` for `train.dtype`. 'auto' resolves as inference's
    --dtype auto does: bf16 autocast on a CPU without bf16 instructions is emulated (a
    fine-tuning step of configs/demo-frontend.yaml ran at 46 audio-s/s in bf16 against 131
    in fp32 on an AVX-512 CPU without AVX512-BF16, 2026-12-03), so there it means fp32."""
    import torch

    from .models import pick_dtype

    resolved = pick_dtype(dtype, device)
    return {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[resolved]


@contextlib.contextmanager
def denormals_flushed(options: TrainConfig) -> Iterator[bool]:
    """With train.flush_denormal, treat float32 values under 1.2e-38 as zero on this CPU (FTZ/DAZ)
    inside the block, as torch.set_flush_denormal does; this thread is set back to torch's
    default after it (threads torch started inside keep the mode; nothing above 1.2e-38 changes).
    Activations and gradients of the demo model on synthetic speech (digital silence, zero
    padding) reach such values, which x86 cores compute many times slower. Measured 2026-12-03
    (Intel Xeon, fp32; README "Fine-tuning speed"): the recipe's fine-tuning 1.00x from the
    pretraining checkpoint, 1.13-1.30x from models 2,000-20,000 steps on, the same loss;
    whole pretraining runs no faster (1,159 s with, 1,188 s without). Enter it before the model
    is built: threads torch starts later inherit the mode, threads it has started keep theirs
    (set only later, a fixed demo batch gained 1.17x instead of 1.33-1.43x). Yields whether it
    is on."""
    import torch

    on = bool(options.flush_denormal) and torch.set_flush_denormal(True)
    try:
        yield on
    finally:
        if on:
            torch.set_flush_denormal(False)


def training_entry(run: Callable[..., TrainerState]) -> Callable[..., TrainerState]:
    """For finetune() and pretrain(), whose first argument is the Config: the output folder is
    checked before anything else, and the whole run, model building included, goes inside
    denormals_flushed (torch's threads are started while the model is built)."""

    @functools.wraps(run)
    def entry(config: Config, *args: Any, **kwargs: Any) -> TrainerState:
        check_output_dir(config.train)
        with denormals_flushed(config.train):
            return run(config, *args, **kwargs)

    return entry


def check_freeze_after(options: TrainConfig, world: int) -> int:
    """train.freeze_feature_encoder_after_steps, checked against the rest of the run."""
    after = options.freeze_feature_encoder_after_steps
    if after < 0:
        raise ConfigError(f"train.freeze_feature_encoder_after_steps must be 0 (never) or a step count, got {after}")
    if after and options.freeze_feature_encoder:
        raise ConfigError("train.freeze_feature_encoder_after_steps needs train.freeze_feature_encoder: false "
                          "(the encoder trains until that step); set freeze_feature_encoder: false, or "
                          "freeze_feature_encoder_after_steps: 0 to keep it frozen throughout")
    if after and world > 1:
        raise ConfigError("train.freeze_feature_encoder_after_steps works in one process only (distributed "
                          "training cannot stop updating parameters mid-run); run one process, or set "
                          "train.freeze_feature_encoder: true or false for the whole run")
    return after


def make_accelerator(options: TrainConfig) -> Any:
    import torch
    from accelerate import Accelerator

    precision = mixed_precision(options.dtype, "cuda" if torch.cuda.is_available() else "cpu")
    # cpu=True on a machine without CUDA: only then does accelerate take torchrun's
    # WORLD_SIZE > 1 as a multi-CPU (gloo) run instead of silently running alone.
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_steps=options.grad_accum,
                              cpu=not torch.cuda.is_available())
    # `accelerate launch --cpu --num_processes 2` silently starts one process: say what runs.
    logger.info(
        "running %d process(es), distributed type %s, device %s, mixed precision %s",
        accelerator.num_processes, accelerator.distributed_type, accelerator.device, precision,
    )
    if int(os.environ.get("WORLD_SIZE", "1")) != accelerator.num_processes:
        logger.warning("WORLD_SIZE=%s but %d process(es) run", os.environ.get("WORLD_SIZE"), accelerator.num_processes)
    return accelerator


def total_steps(task: Task, options: TrainConfig, world: int) -> int:
    if options.max_steps > 0:
        return options.max_steps
    batches = length_grouped_batches(task.durations, options, 0, options.seed)
    per_epoch = len(shard(batches, 0, world)) // max(1, options.grad_accum)
    return max(1, per_epoch * options.epochs)


def train(task: Task, config: Config, resume: bool | None = None, stop_after: int | None = None) -> TrainerState:
    """Run the loop. `resume`: None = resume when output_dir holds a checkpoint, True = it
    must, False = start over. `stop_after`: save and stop after this many optimizer steps
    (the schedule still assumes the full run), e.g. to split a run across sessions."""
    import torch

    options = config.train
    output_dir = Path(options.output_dir)
    accelerator = make_accelerator(options)
    rank, world = accelerator.process_index, accelerator.num_processes
    freeze_at = check_freeze_after(options, world)  # before anything is written to output_dir
    main = accelerator.is_main_process
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / CONFIG_FILE).write_text(config.to_yaml())
    accelerator.wait_for_everyone()

    random.seed(options.seed)
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)
    steps = total_steps(task, options, world)
    params = task.trainable(task.model) if task.trainable else [p for p in task.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=options.learning_rate, betas=(options.adam_beta1, options.adam_beta2),
        eps=options.adam_eps, weight_decay=options.weight_decay,
        # one kernel for all parameters, on CPU and CUDA (not MPS): about half the step time
        fused=accelerator.device.type in ("cpu", "cuda"),
    )
    model, optimizer = accelerator.prepare(task.model, optimizer)

    def set_lr(step: int) -> float:
        # The learning rate is a function of the step (as in nanoGPT's get_lr), not a saved
        # scheduler: nothing to restore on resume, and no pickled object to load from a
        # checkpoint (accelerate loads registered objects with weights_only=False).
        lr = options.learning_rate * lr_factor(step, steps, options)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    state = TrainerState(started_at=round(time.time(), 1))
    found = checkpoint_dirs(output_dir)
    if resume and not found:
        raise W2VError(f"--resume was given but {output_dir}/{CHECKPOINTS} holds no checkpoint")
    if found and resume is not False:
        latest = found[-1]
        try:  # accelerate loads the optimizer and RNG states with weights_only=True: no code runs
            accelerator.load_state(str(latest / "accelerate"))
        except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, ValueError) as e:
            raise W2VError(f"cannot resume from {latest}: {str(e).splitlines()[0] if str(e) else type(e).__name__} "
                           f"-- it does not fit this run (another model, or train.freeze_feature_encoder changed?) or "
                           f"is damaged or not w2v's; delete it to resume from an earlier one, or start over with "
                           f"--no-resume") from e
        state = TrainerState.load(latest / STATE_FILE)
        logger.info("resumed from %s (step %d, epoch %d)", latest, state.step, state.epoch)
    elif found:
        logger.info("--no-resume: starting over; older checkpoints in %s will be replaced", output_dir)
        if main:
            shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
            (output_dir / LOG_FILE).unlink(missing_ok=True)
    log_rows = _read_log(output_dir / LOG_FILE, state.step)

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        tmp = output_dir / CHECKPOINTS / f".tmp-step-{state.step:06d}"
        final = output_dir / CHECKPOINTS / f"step-{state.step:06d}"
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp / "accelerate"))  # model, optimizer, RNG of every rank
        if main:
            state.save(tmp / STATE_FILE)
            (tmp / CONFIG_FILE).write_text(config.to_yaml())
            replace_dir(tmp, final)
            # The output folder itself is always an inference-ready model (the latest).
            _save_model_atomically(task, accelerator.unwrap_model(model), output_dir)
            _prune(output_dir, options.keep_last, state.best_step)
        accelerator.wait_for_everyone()

    def run_eval() -> None:
        if task.evaluate is None:
            return
        model.eval()
        result = task.evaluate(accelerator.unwrap_model(model), state.step) if main else {}
        model.train()
        if not main:
            return
        result = {"step": state.step, **result}
        state.history.append(result)
        _append_log(output_dir / "eval_log.jsonl", result)
        value = result.get(task.metric)
        logger.info("eval step %d | %s", state.step, " | ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items() if k != "step"))
        if value is not None and (state.best_metric is None or value < state.best_metric):
            state.best_metric, state.best_step = value, state.step
            _save_model_atomically(task, accelerator.unwrap_model(model), output_dir / "best")

    model.train()
    started = time.perf_counter() - state.elapsed_s
    # this process's first step, its start and its last step (--stop-after's, else the schedule's): the ETA
    pace = (state.step, time.perf_counter(), steps if stop_after is None else min(steps, stop_after))
    window = {"loss": 0.0, "n": 0, "audio_s": 0.0, "t": time.perf_counter(), "extra": {}}
    logger.info("training %s for %d steps (batch %s, grad accum %d, lr %.2e)", task.name, steps,
                f"{options.batch_audio_s:g} s of audio" if options.batch_audio_s > 0 else options.batch_size,
                options.grad_accum, options.learning_rate)
    last_saved = state.step
    frozen = False
    with StopRequested() as stop:
        while state.step < steps and not stop:
            batches = shard(length_grouped_batches(task.durations, options, state.epoch, options.seed), rank, world)
            if not batches:
                raise W2VError("the training set gives no batch for every process; use more data or fewer processes")
            for index in range(state.batch_in_epoch, len(batches)):
                if freeze_at and state.step >= freeze_at and not frozen:
                    # The optimizer keeps the encoder's parameters; with no gradient they are
                    # skipped, so a resumed run's optimizer state still fits.
                    accelerator.unwrap_model(model).freeze_feature_encoder()
                    frozen = True
                    logger.info("step %d: feature encoder frozen (train.freeze_feature_encoder_after_steps)", state.step)
                lr = set_lr(state.step)
                batch = task.collate(batches[index], state.step)
                audio_s = float(batch.pop("audio_s"))
                with accelerator.accumulate(model):
                    loss, extra = task.compute_loss(model, batch, state.step)
                    finite = accelerator.gather(torch.isfinite(loss.detach()).reshape(1)).all().item()
                    if finite:
                        accelerator.backward(loss)
                    else:
                        state.skipped_nonfinite += 1
                        logger.warning("step %d: non-finite loss, batch skipped (%d so far)", state.step, state.skipped_nonfinite)
                        optimizer.zero_grad()
                    grad_norm = None
                    if accelerator.sync_gradients and finite:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), options.max_grad_norm or float("inf"))
                        if not torch.isfinite(grad_norm):
                            # A finite loss can still give inf/nan gradients; one such step
                            # would turn every weight into nan.
                            finite = False
                            state.skipped_nonfinite += 1
                            logger.warning("step %d: non-finite gradient norm, update skipped (%d so far)",
                                           state.step, state.skipped_nonfinite)
                    if finite:
                        optimizer.step()
                    optimizer.zero_grad()
                state.batch_in_epoch = index + 1
                state.audio_s += audio_s
                if finite:
                    window["loss"] += float(loss.detach())
                    window["n"] += 1
                    for k, v in extra.items():
                        window["extra"][k] = window["extra"].get(k, 0.0) + float(v)
                window["audio_s"] += audio_s
                if not accelerator.sync_gradients:
                    continue
                state.step += 1
                state.elapsed_s = time.perf_counter() - started
                if state.step % options.log_every == 0 or state.step == steps:
                    row = _log_line(state, steps, window, lr, grad_norm, world, pace)
                    log_rows.append(row)
                    if main:
                        _append_log(output_dir / LOG_FILE, row)
                    window = {"loss": 0.0, "n": 0, "audio_s": 0.0, "t": time.perf_counter(), "extra": {}}
                if options.eval_every and state.step % options.eval_every == 0 and state.step < steps:
                    run_eval()
                if options.save_every and state.step % options.save_every == 0 and state.step < steps:
                    save_checkpoint()
                    last_saved = state.step
                if state.step >= steps or stop or (stop_after is not None and state.step >= stop_after):
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
            if stop_after is not None and state.step >= stop_after:
                break
    finished = state.step >= steps
    if finished:
        run_eval()
    if state.step != last_saved or finished:
        save_checkpoint()
    if main:
        _write_rank_digest(output_dir, rank, state, accelerator.unwrap_model(model))
        plot_history(output_dir, log_rows, state.history, task.metric)
    elif world > 1:
        _write_rank_digest(output_dir, rank, state, accelerator.unwrap_model(model))
    accelerator.wait_for_everyone()
    state.stopped_by = None if finished else signal.Signals(stop.signal).name if stop.signal else "stop_after"
    if main:
        state.save(output_dir / STATE_FILE)
    if not finished:
        why = f"signal {state.stopped_by}" if stop.signal else f"--stop-after {stop_after}"
        logger.warning("stopped at step %d of %d (%s); checkpoint saved: rerun the same command to resume",
                       state.step, steps, why)
    else:
        logger.info("done: %d steps in %.0f s; model in %s", state.step, state.elapsed_s, output_dir)
    if state.skipped_nonfinite:
        logger.warning("%d batches had a non-finite loss and were skipped", state.skipped_nonfinite)
    accelerator.end_training()
    return state


def _log_line(state: TrainerState, steps: int, window: dict, lr: float, grad_norm: Any, world: int,
              pace: tuple[int, float, int] | None = None) -> dict:
    """One fixed-format line on stderr; the same fields as a dict for the JSONL log. `pace` (the
    step this process started at, when, and the step it will stop at) gives the time left at this
    process's mean rate, evaluations and checkpoints included; a resumed run's earlier rate is not
    used."""
    seconds = max(1e-9, time.perf_counter() - window["t"])
    n = max(1, window["n"])
    row = {
        "step": state.step,
        "loss": window["loss"] / n,
        "lr": lr,
        "grad_norm": None if grad_norm is None else float(grad_norm),
        "audio_s_per_s": window["audio_s"] * world / seconds,
        "elapsed_s": round(state.elapsed_s, 1),
        **{k: v / n for k, v in window["extra"].items()},
    }
    extra = "".join(f" | {k} {v / n:.4g}" for k, v in window["extra"].items())
    grad = "nan" if row["grad_norm"] is None else f"{row['grad_norm']:.3f}"
    elapsed = _hms(state.elapsed_s)
    if pace is not None and pace[0] < state.step < pace[2]:
        left = (time.perf_counter() - pace[1]) / (state.step - pace[0]) * (pace[2] - state.step)
        row["eta_s"] = round(left, 1)
        elapsed += f", {_hms(left)} left"
    logger.info(
        "step %6d/%d | loss %.4f | lr %.2e | grad %s | %.1f audio-s/s | %s%s",
        state.step, steps, row["loss"], row["lr"], grad, row["audio_s_per_s"], elapsed, extra,
    )
    return row


def _hms(seconds: float) -> str:
    """01:02:03; days as hours (30:00:00), not wrapped as strftime would."""
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _append_log(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def _read_log(path: Path, up_to_step: int) -> list[dict]:
    """Rows of an existing log up to the resumed step (a crash may have logged beyond it)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if row.get("step", 0) <= up_to_step:
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _save_model_atomically(task: Task, model: Any, folder: Path) -> None:
    """Write the inference-ready model to a temporary folder, then swap its files in."""
    tmp = folder.parent / f".tmp-{folder.name}-model"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    task.save_model(model, tmp)
    folder.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        os.replace(item, folder / item.name)
    tmp.rmdir()


def _prune(output_dir: Path, keep_last: int, best_step: int | None) -> None:
    found = checkpoint_dirs(output_dir)
    keep = set(found[-max(1, keep_last):])
    for path in found:
        if path not in keep and (best_step is None or path.name != f"step-{best_step:06d}"):
            shutil.rmtree(path, ignore_errors=True)


def _write_rank_digest(output_dir: Path, rank: int, state: TrainerState, model: Any) -> None:
    """ranks/rank-N.json: what this process trained and a hash of its weights, so a
    multi-process run can be checked for identical replicas."""
    folder = output_dir / "ranks"
    folder.mkdir(exist_ok=True)
    record = {"rank": rank, "step": state.step, "audio_s": state.audio_s, "weights": weights_digest(model)}
    (folder / f"rank-{rank}.json").write_text(json.dumps(record))


def check_output_dir(options: TrainConfig) -> None:
    if not options.output_dir:
        raise ConfigError("train.output_dir is empty; set it in the config or pass --output-dir")
