"""Interrupted training: a real `w2v finetune` process on configs/tiny.yaml is stopped by
SIGINT, then SIGTERM, then killed with SIGKILL, and resumed each time until it completes.

SIGINT/SIGTERM: the step in flight finishes, a checkpoint is saved, the process exits by
itself. SIGKILL: nothing is saved, so the steps since the last checkpoint are lost, and the
rerun resumes from that checkpoint with the log cut back to it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf

from w2v_cli.testing import synth_speechlike

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 60
SAVE_EVERY = 10
TEXTS = ["HELLO WORLD", "GOOD MORNING", "THE CAT SAT", "A DOG RAN"]


def logged_steps(run: Path) -> list[int]:
    try:
        lines = (run / "train_log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    steps = []
    for line in lines:
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):  # a line being written right now
            pass
    return steps


def checkpoints(run: Path) -> list[int]:
    folder = run / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("step-*")) if folder.is_dir() else []


def start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.01)


def test_signals_and_kill_9_then_resume_completes(tmp_path):
    rows = ["id\tpath\ttext"]
    for i, text in enumerate(TEXTS):
        sf.write(tmp_path / f"u{i}.wav", synth_speechlike(1.5, seed=i), 16000)
        rows.append(f"u{i}\tu{i}.wav\t{text}")
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "w2v_cli.cli", "finetune", "--config", str(ROOT / "configs" / "tiny.yaml"),
               "-o", str(run), "--set", f"data.train={tmp_path / 'train.tsv'}",
               "--set", f"train.max_steps={MAX_STEPS}", "--set", f"train.save_every={SAVE_EVERY}",
               "--set", "train.eval_every=0", "--set", "train.log_every=1", "--set", "train.batch_size=2",
               "--set", "train.warmup_steps=2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    # 1. Ctrl-C (SIGINT) mid-run: the step finishes, a checkpoint is saved, a clean exit.
    # 2. SIGTERM (what a scheduler sends) after the resumed run has gone on a little.
    stopped_at = 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = start(command, env)
        wait_for(lambda: len(logged_steps(run)) >= stopped_at + 3, proc, f"step {stopped_at + 3}")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, stderr[-2000:]  # stopped as asked, saying how (130, 143)
        assert "Traceback" not in stderr
        state = json.loads((run / "trainer_state.json").read_text())
        assert state["stopped_by"] == sig.name and stopped_at < state["step"] < MAX_STEPS
        assert f"received {sig.name}" in stderr and "checkpoint saved" in stderr
        assert checkpoints(run)[-1] == state["step"]  # saved at the step it stopped on
        assert logged_steps(run) == list(range(1, state["step"] + 1))
        if stopped_at:
            assert f"resumed from {run / 'checkpoints' / f'step-{stopped_at:06d}'}" in stderr
            assert state["started_at"] == started_at < state["updated_at"]  # the run's start, kept on resume
        started_at = state["started_at"]
        stopped_at = state["step"]

    # 3. SIGKILL a few steps after a periodic checkpoint: those steps are lost, no more.
    proc = start(command, env)
    next_save = (stopped_at // SAVE_EVERY + 1) * SAVE_EVERY
    wait_for(lambda: bool(checkpoints(run)) and checkpoints(run)[-1] >= next_save
             and len(logged_steps(run)) >= next_save + 3, proc, f"a checkpoint at step {next_save}")
    proc.kill()
    proc.communicate(timeout=60)
    last_checkpoint = checkpoints(run)[-1]
    logged_before_kill = len(logged_steps(run))
    assert last_checkpoint < logged_before_kill < MAX_STEPS, "the run finished before it was killed"

    # 4. The rerun resumes from that checkpoint and completes the run.
    proc = start(command, env)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    assert f"resumed from {run / 'checkpoints' / f'step-{last_checkpoint:06d}'}" in stderr
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["step"] == MAX_STEPS and state["stopped_by"] is None
    assert logged_steps(run) == list(range(1, MAX_STEPS + 1))  # the lost steps were redone once
    assert (run / "model.safetensors").is_file() and (run / "config.json").is_file()
    assert not list((run / "checkpoints").glob(".tmp-*"))
