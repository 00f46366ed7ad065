import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.cli import cli
from w2v_cli.config import InferenceConfig
from w2v_cli.inference import Engine, array_source, iter_chunks
from w2v_cli.models import load_ctc_model
from w2v_cli.testing import synth_speechlike


def pipeline_text(loaded, samples, chunk_s, stride_s):
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=loaded.model, device="cpu",
                   tokenizer=loaded.processor.tokenizer,
                   feature_extractor=loaded.processor.feature_extractor)
    return asr(samples.copy(), chunk_length_s=chunk_s, stride_length_s=stride_s)["text"]


def run(loaded, sources, **options):
    return list(Engine(loaded, InferenceConfig(progress=False, **options)).run(sources))


def test_chunks_match_the_pipeline_recipe_whatever_the_block_size():
    x = np.arange(1000, dtype=np.float32)
    reference = [(c.samples[0], len(c.samples), c.left, c.right) for c in iter_chunks([x], 300, 50, 50)]
    for size in (1, 7, 299, 300, 301, 1000):
        blocks = [x[i:i + size] for i in range(0, len(x), size)]
        got = [(c.samples[0], len(c.samples), c.left, c.right) for c in iter_chunks(blocks, 300, 50, 50)]
        assert got == reference
    assert reference[0] == (0, 300, 0, 50) and reference[-1][3] == 0


def test_long_audio_equals_transformers_pipeline(tiny_ctc):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    x = synth_speechlike(31.7, seed=5)
    expected = pipeline_text(loaded, x, 10, 2)
    for batch_size in (1, 3):
        [result] = run(loaded, [array_source("x", x, 16000)], chunk_s=10, stride_s=2, batch_size=batch_size)
        assert result.text == expected


@pytest.mark.parametrize("fixture", ["tiny_ctc", "tiny_ctc_layernorm"])
def test_short_audio_is_one_pass_and_independent_of_batch(fixture, request):
    import torch

    loaded = load_ctc_model(str(request.getfixturevalue(fixture)), device="cpu")
    clips = [synth_speechlike(s, seed=i) for i, s in enumerate((1.3, 2.0, 2.0, 0.7))]
    processor = loaded.processor
    singles = []
    for clip in clips:
        inputs = processor(clip, sampling_rate=16000, return_tensors="pt").input_values
        with torch.no_grad():
            singles.append(processor.batch_decode(loaded.model(inputs).logits.argmax(-1))[0])
    sources = [array_source(str(i), c, 16000) for i, c in enumerate(clips)]
    assert [r.text for r in run(loaded, sources, batch_size=8)] == singles
    assert [r.text for r in run(loaded, sources[::-1], batch_size=8)] == singles[::-1]


@pytest.fixture()
def wavs(tmp_path, speech_dir):
    good = tmp_path / "in"
    good.mkdir()
    for i, seconds in enumerate((1.0, 2.5)):
        sf.write(good / f"clip{i}.wav", synth_speechlike(seconds, seed=i), 16000)
    (good / "broken.wav").write_text("not audio")
    return good


def test_cli_one_input_prints_transcript_alone(tiny_ctc, speech_dir):
    path = speech_dir / "audio" / "1272-128104-0000.flac"
    # fp32 as the library call below (the CLI's default dtype is auto: bf16 on bf16 CPUs)
    result = CliRunner().invoke(cli, ["transcribe", str(path), "--model", str(tiny_ctc), "--dtype", "fp32"])
    assert result.exit_code == 0, result.output
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    from w2v_cli.audio import load_audio

    [expected] = run(loaded, [array_source("a", load_audio(path), 16000)])
    assert result.stdout == expected.text + "\n"


def test_cli_prints_other_formats_on_stdout_without_output_dir(tiny_ctc, wavs, tmp_path):
    """-f without -o: one input's srt (the file -o would write), several inputs' json as JSON
    Lines and ctm; formats that cannot be concatenated ask for -o."""
    runner = CliRunner()

    def transcribe(*args):
        return runner.invoke(cli, ["transcribe", *args, "--model", str(tiny_ctc), "-q"])

    clips = [str(wavs / "clip0.wav"), str(wavs / "clip1.wav")]
    srt = transcribe(clips[1], "-f", "srt")
    assert srt.exit_code == 0, srt.output
    assert transcribe(clips[1], "-f", "srt", "-o", str(tmp_path / "o")).exit_code == 0
    assert srt.stdout == (tmp_path / "o" / "clip1.srt").read_text() and srt.stdout.startswith("1\n00:00:")
    tsv = transcribe(*clips).stdout.splitlines()
    lines = transcribe(*clips, str(tmp_path / "missing.wav"), "-f", "json")
    assert lines.exit_code == 1 and "missing.wav: file not found" in lines.stderr
    records = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [f"{r['path']}\t{r['text']}" for r in records] == tsv
    assert all(r["segments"] is not None and r["model"] == str(tiny_ctc) for r in records)
    ctm = transcribe(*clips, "-f", "ctm").stdout.splitlines()
    words = [w for r in records for s in r["segments"] for w in s["words"]]
    assert words and [line.split()[0] + " " + line.split()[4] for line in ctm] == [
        f"{Path(r['path']).stem} {w['word']}" for r in records for s in r["segments"] for w in s["words"]]
    for fmt in ("srt", "all"):
        bad = transcribe(*clips, "-f", fmt) if fmt == "srt" else transcribe(clips[0], "-f", fmt)
        assert bad.exit_code == 2 and "give --output-dir" in bad.output


def test_cli_batch_goes_past_bad_input_and_writes_outputs(tiny_ctc, wavs, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["transcribe", str(wavs), str(tmp_path / "missing.flac"),
                                      "--model", str(tiny_ctc), "-o", str(out), "-f", "all", "-q"])
    assert result.exit_code == 1
    lines = result.stdout.strip().split("\n")
    assert [line.split("\t")[0] for line in lines] == [str(wavs / "clip0.wav"), str(wavs / "clip1.wav")]
    assert f"error: {wavs / 'broken.wav'}: not a readable audio file" in result.stderr
    assert "missing.flac: file not found" in result.stderr
    assert "2 of 4 inputs failed" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        f"clip{i}.{ext}" for i in (0, 1) for ext in ("ctm", "json", "srt", "tsv", "txt", "vtt")]
    record = json.loads((out / "clip1.json").read_text())
    assert record["text"] == lines[1].split("\t")[1] and record["duration_s"] == 2.5
    assert record["model"] == str(tiny_ctc) and record["path"] == str(wavs / "clip1.wav")


def test_cli_glob_and_no_match(tiny_ctc, wavs):
    result = CliRunner().invoke(cli, ["transcribe", str(wavs / "clip*.wav"), str(wavs / "*.ogg"),
                                      "--model", str(tiny_ctc), "-q"])
    assert result.exit_code == 1
    assert len(result.stdout.strip().split("\n")) == 2
    assert "no files match" in result.stderr and "1 of 3 inputs failed" in result.stderr


def test_cli_help_and_model_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    assert "Transcribe audio files" in runner.invoke(cli, ["transcribe", "--help"]).output
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    sf.write(tmp_path / "a.wav", synth_speechlike(1.0), 16000)
    # named, the default model never falls back to the built-in demo (tests/test_models.py)
    result = runner.invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "-m", "facebook/wav2vec2-base-960h"])
    assert result.exit_code == 1
    assert "model 'facebook/wav2vec2-base-960h' is not available" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["transcribe"])
    assert result.exit_code == 2 and "Missing argument" in result.output
