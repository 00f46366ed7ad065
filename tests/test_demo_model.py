"""The bundled demo models (scripts/train_demo.sh, packaged by scripts/package_demo.py):
the README Quickstart's first command, offline, on a fresh cache, and the pretraining check."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from w2v_cli.models import BUILTIN_DIR, builtin_models

ASSETS = Path(__file__).resolve().parents[1] / "w2v_cli" / "assets"
EXAMPLE = ASSETS / "audio" / "synth-hibari-4350-9170-0007.flac"
EXAMPLE_TEXT = "THESE BANDS OF ARMED MEN SUBMISSIVE TO A SINGLE WILL ARE WHAT CONSTITUTE THE ARMY"


def w2v(*args: str, home: Path) -> subprocess.CompletedProcess:
    """A fresh `w2v` process with no network and an empty Hugging Face cache."""
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    env.pop("TRANSFORMERS_CACHE", None)
    return subprocess.run([sys.executable, "-m", "w2v_cli.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_both_demo_models_ship_with_cards_under_25_mb():
    assert {"demo", "demo-pretrain"} <= set(builtin_models())
    size = sum(p.stat().st_size for p in BUILTIN_DIR.rglob("*") if p.is_file())
    assert size < 25 * 2**20
    for name in ("demo", "demo-pretrain"):
        card = (BUILTIN_DIR / name / "README.md").read_text()
        assert "not measured" not in card and "What it is not good for" in card


def test_quickstart_transcribes_the_bundled_example_offline(tmp_path):
    """`make demo`'s command on a machine with no network and an empty cache (a held-out
    sentence). The demo model brings its n-gram LM (language_model/, built from its training
    transcripts only) and decodes with it when pyctcdecode and kenlm are installed, as `make
    test` installs them: then the transcript is the reference word for word, as the README
    Quickstart promises (measured 2026-12-03 on an Intel Xeon in fp32, the default there, and
    in bf16; 2026-12-02 on an AMD EPYC in bf16). Without them it decodes greedily (held-out
    hibari CER 0.08), close but not equal; a broken model scores a CER near 1."""
    from w2v_cli.decoding import beam_search_available

    result = w2v("transcribe", str(EXAMPLE), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "using the built-in 'demo' model instead" in result.stderr
    greedy = w2v("transcribe", str(EXAMPLE), "--decoder", "greedy", home=tmp_path)
    assert greedy.returncode == 0 and jiwer.cer(EXAMPLE_TEXT, greedy.stdout.strip()) < 0.35
    if beam_search_available():
        assert result.stdout.strip() == EXAMPLE_TEXT
        assert jiwer.wer(EXAMPLE_TEXT, greedy.stdout.strip()) > 0  # the LM is what makes it exact
    else:
        assert "pyctcdecode and kenlm are not installed: greedy decoding" in result.stderr
        assert result.stdout == greedy.stdout


def test_demo_pretrain_passes_the_check_on_its_default_recording(tmp_path):
    result = w2v("pretrain-check", "--model", "demo-pretrain", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "bundled synthesized recording" in result.stderr
    check = json.loads(result.stdout)
    assert Path(check["audio"]).name == EXAMPLE.name
    assert check["passed"] and check["cosine_masked"] > 0.5 > check["cosine_shuffled"]


def test_named_hub_model_never_falls_back_to_the_demo(tmp_path):
    result = w2v("transcribe", str(EXAMPLE), "--model", "facebook/wav2vec2-base-960h", home=tmp_path)
    assert result.returncode == 1 and "is not available" in result.stderr
    assert "built-in 'demo' model instead" not in result.stderr


def test_demo_model_in_bf16_agrees_with_fp32(tmp_path):
    texts = {}
    for dtype in ("fp32", "bf16"):
        result = w2v("transcribe", str(EXAMPLE), "--model", "demo", "--dtype", dtype, "--decoder", "greedy",
                     home=tmp_path)
        assert result.returncode == 0, result.stderr
        texts[dtype] = result.stdout.strip()
    assert jiwer.cer(texts["fp32"], texts["bf16"]) <= 0.05


@pytest.mark.parametrize("loader", ["pyctcdecode", "transformers"])
def test_exported_demo_transcribes_the_example_exactly_in_transformers(tmp_path, loader, load_exported):
    """`w2v export demo` gives a folder that pyctcdecode's load_from_dir (beside transformers'
    Wav2Vec2Processor) and transformers' Wav2Vec2ProcessorWithLM load with the demo's LM (the
    package's gzipped ARPA, uncompressed), and decoding with the arguments the command prints
    gives the reference, as `w2v transcribe` does."""
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    import soundfile as sf
    import torch
    from transformers import AutoModelForCTC

    out = tmp_path / "demo-hf"
    result = w2v("export", "demo", str(out), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "token_min_logp=-8" in result.stdout and (out / "WORDLIST-COPYRIGHT").is_file()
    processor, decode = load_exported(out, loader)
    model = AutoModelForCTC.from_pretrained(str(out)).eval()
    samples, rate = sf.read(EXAMPLE, dtype="float32")
    with torch.no_grad():
        logits = model(processor(samples, sampling_rate=rate, return_tensors="pt").input_values).logits
    assert decode(logits.numpy(), token_min_logp=-8) == [EXAMPLE_TEXT]
