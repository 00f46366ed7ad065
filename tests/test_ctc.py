import json

import pytest
import torch
from click.testing import CliRunner

from w2v_cli.audio import load_audio
from w2v_cli.cli import cli
from w2v_cli.ctc import ctc_loss, min_frames
from w2v_cli.errors import DataError
from w2v_cli.models import load_ctc_model

TEXT = "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES"


@pytest.fixture(scope="module")
def clip(speech_dir):
    return speech_dir / "audio" / "1272-128104-0000.flac"


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_equals_transformers(tiny_ctc, clip, reduction):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    audio = load_audio(clip)
    result = ctc_loss(loaded, audio, TEXT.lower(), reduction)
    processor, model = loaded.processor, loaded.model
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt").input_values
    labels = processor(text=TEXT).input_ids
    model.config.ctc_loss_reduction = reduction
    try:
        with torch.no_grad():
            expected = model(inputs, labels=torch.tensor([labels])).loss.item()
    finally:
        model.config.ctc_loss_reduction = "sum"
    assert result.loss == pytest.approx(expected, rel=1e-4)
    assert result.labels == len(labels) and result.feasible and result.text == TEXT


def test_min_frames_counts_repeats():
    assert min_frames([1, 2, 2, 3, 3, 3]) == 6 + 3


def test_infeasible_and_unknown_chars(tiny_ctc):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    audio = load_audio_short = torch.zeros(1600).numpy() + 0.01  # 0.1 s: 24 frames
    result = ctc_loss(loaded, load_audio_short, "A" * 20)
    assert not result.feasible and result.loss is None and result.repeats == 19
    with pytest.raises(DataError, match="lacks: '1' 'É'.*--unk"):
        ctc_loss(loaded, audio, "café 1")
    assert ctc_loss(loaded, audio, "CAFÉ", unk=True).labels == 4


def test_cli_json_and_errors(tiny_ctc, clip, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["ctc-loss", str(clip), TEXT, "--model", str(tiny_ctc), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert {"loss", "reduction", "frames", "labels", "feasible"} <= set(record)
    assert record["reduction"] == "sum" and record["feasible"] is True and record["loss"] > 0
    (tmp_path / "t.txt").write_text(TEXT)
    plain = runner.invoke(cli, ["ctc-loss", str(clip), f"@{tmp_path / 't.txt'}", "-m", str(tiny_ctc)])
    assert plain.exit_code == 0 and plain.stdout.startswith(f"{record['loss']:.4f}")
    bad = runner.invoke(cli, ["ctc-loss", str(clip), "naïve 42", "-m", str(tiny_ctc)])
    assert bad.exit_code == 1 and "'2' '4' 'Ï'" in bad.output
    missing = runner.invoke(cli, ["ctc-loss", str(tmp_path / "no.wav"), "A", "-m", str(tiny_ctc)])
    assert missing.exit_code == 1 and "no.wav: file not found" in missing.output
    assert runner.invoke(cli, ["ctc-loss", "--help"]).exit_code == 0
