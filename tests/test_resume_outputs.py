"""Resumable batches: re-running `w2v transcribe -o DIR` skips what is done, and only that."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.testing import make_tiny_ctc_model, synth_speechlike


@pytest.fixture()
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, seconds in enumerate((1.0, 1.5, 0.8)):
        sf.write(folder / f"clip{i}.wav", synth_speechlike(seconds, seed=i), 16000)
    return folder


def transcribe(model, inputs, out, *extra):
    result = CliRunner().invoke(cli, ["transcribe", str(inputs), "--model", str(model), "-o", str(out), "-q", *extra])
    assert result.exit_code == 0, result.output
    return result


def stamps(out: Path) -> dict[str, int]:
    """The inode of each visible output: a rewrite (temp file + rename) changes it."""
    return {p.name: p.stat().st_ino for p in sorted(out.iterdir()) if not p.name.startswith(".")}


def test_rerun_skips_done_inputs_and_says_so(tiny_ctc, inputs, tmp_path):
    out = tmp_path / "out"
    first = transcribe(tiny_ctc, inputs, out, "-f", "all")
    names = {p.name for p in out.iterdir()}
    assert {".clip0.w2v.json", ".clip1.w2v.json", ".clip2.w2v.json", "clip0.json", "clip2.txt"} <= names
    before = stamps(out)
    again = transcribe(tiny_ctc, inputs, out, "-f", "all")
    assert "skipping 3 of 3 inputs already transcribed" in again.stderr
    assert again.stdout == first.stdout  # the earlier transcripts, in order
    assert stamps(out) == before  # nothing rewritten
    redo = transcribe(tiny_ctc, inputs, out, "-f", "all", "--overwrite")
    assert "skipping" not in redo.stderr and redo.stdout == first.stdout
    assert all(stamps(out)[name] != ino for name, ino in before.items())


def test_other_model_option_or_input_redoes(tiny_ctc, inputs, tmp_path):
    out = tmp_path / "out"
    transcribe(tiny_ctc, inputs, out)
    before = stamps(out)
    assert "skipping" not in transcribe(tiny_ctc, inputs, out, "--chunk-s", "10").stderr
    assert all(stamps(out)[n] != i for n, i in before.items())
    other = make_tiny_ctc_model(tmp_path / "other", seed=7)
    assert "skipping" not in transcribe(other, inputs, out).stderr
    assert json.loads((out / ".clip0.w2v.json").read_text())["fingerprint"]["model"]["folder"] == str(other)
    # a retrained model in the same folder (new weights) is a different model
    time.sleep(0.01)
    make_tiny_ctc_model(other, seed=8)
    assert "skipping" not in transcribe(other, inputs, out).stderr
    assert "skipping 3 of 3" in transcribe(other, inputs, out).stderr
    # a re-recorded input is redone, the others are not
    sf.write(inputs / "clip1.wav", synth_speechlike(1.2, seed=9), 16000)
    assert "skipping 2 of 3" in transcribe(other, inputs, out).stderr


def test_a_new_format_does_only_that_and_keeps_the_rest(tiny_ctc, inputs, tmp_path):
    out = tmp_path / "out"
    transcribe(tiny_ctc, inputs, out, "-f", "txt")
    assert "skipping" not in transcribe(tiny_ctc, inputs, out, "-f", "json").stderr
    assert "skipping 3 of 3" in transcribe(tiny_ctc, inputs, out, "-f", "txt").stderr
    assert "skipping 3 of 3" in transcribe(tiny_ctc, inputs, out, "-f", "json").stderr
    sidecar = json.loads((out / ".clip0.w2v.json").read_text())
    assert set(sidecar["outputs"]) == {"clip0.txt", "clip0.json"}
    assert sidecar["outputs"]["clip0.txt"]["writer"] == "TxtWriter"


@pytest.mark.parametrize("damage", ["output changed", "sidecar missing", "sidecar torn", "output missing"])
def test_every_state_a_kill_can_leave_is_redone(tiny_ctc, inputs, tmp_path, damage):
    out = tmp_path / "out"
    first = transcribe(tiny_ctc, inputs, out, "-f", "all")
    if damage == "output changed":  # a later run renamed its output in, then died before its sidecar
        (out / "clip1.txt").write_text("SOMETHING ELSE\n")
    elif damage == "sidecar missing":
        (out / ".clip1.w2v.json").unlink()
    elif damage == "sidecar torn":
        text = (out / ".clip1.w2v.json").read_text()
        (out / ".clip1.w2v.json").write_text(text[: len(text) // 2])
    else:
        (out / "clip1.json").unlink()
    again = transcribe(tiny_ctc, inputs, out, "-f", "all")
    assert "skipping 2 of 3" in again.stderr and again.stdout == first.stdout
    assert (out / "clip1.txt").read_text() == first.stdout.split("\n")[1].split("\t")[1] + "\n"


def test_kill_9_mid_batch_then_resume_completes(tiny_ctc, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(24):
        sf.write(folder / f"c{i:02d}.wav", synth_speechlike(4.0, seed=i), 16000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "w2v_cli.cli", "transcribe", str(folder), "--model", str(tiny_ctc),
               "-o", str(out), "-f", "all", "-q", "--batch-size", "1", "--set", "inference.num_threads=1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob(".*.w2v.json")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = list(out.glob(".*.w2v.json"))
    done_before = len(before)
    resumed = subprocess.run(command, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping {done_before} of 24" in resumed.stderr
    assert done_before < 24, "the run finished before it was killed; give it more work"
    lines = resumed.stdout.strip().split("\n")
    assert len(lines) == 24
    for line in lines:  # every output is complete and agrees with what was printed
        path, text = line.split("\t")
        stem = Path(path).stem
        assert (out / f"{stem}.txt").read_text() == text + "\n"
        assert json.loads((out / f"{stem}.json").read_text())["text"] == text
    # and what was done before the kill is what a clean run gives
    early = sorted(p.name[1:-len(".w2v.json")] + ".wav" for p in before)
    clean = CliRunner().invoke(cli, ["transcribe", *(str(folder / n) for n in early), str(folder / "c23.wav"),
                                     "--model", str(tiny_ctc), "-q", "--set", "inference.num_threads=1"])
    for line in clean.stdout.strip().split("\n"):
        path, text = line.split("\t")
        assert (out / f"{Path(path).stem}.txt").read_text() == text + "\n"


def test_sidecar_records_the_dtype_auto_resolved_to(tiny_ctc, inputs, tmp_path):
    from w2v_cli.models import cpu_has_bf16

    out = tmp_path / "out"
    transcribe(tiny_ctc, inputs, out, "--dtype", "auto", "--device", "cpu")
    actual = "bf16" if cpu_has_bf16() else "fp32"
    assert json.loads((out / ".clip0.w2v.json").read_text())["fingerprint"]["dtype"] == actual
    # the same dtype asked for by name is the same run; the other one is not
    assert "skipping 3 of 3" in transcribe(tiny_ctc, inputs, out, "--dtype", actual, "--device", "cpu").stderr
    other = "fp32" if actual == "bf16" else "bf16"
    assert "skipping" not in transcribe(tiny_ctc, inputs, out, "--dtype", other, "--device", "cpu").stderr
