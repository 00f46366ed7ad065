"""Shared fixtures: tiny random models saved to disk, and the shared real recordings."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

from w2v_cli.testing import make_tiny_ctc_model, make_tiny_pretraining_model

ROOT = Path(__file__).resolve().parents[1]
import os

# CI puts `shared/` beside the checkout; W2V_SHARED points elsewhere for a clone made away from it.
SPEECH = Path(os.environ.get("W2V_SHARED", ROOT.parent / "shared")) / "data" / "speech"


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    assert (SPEECH / "manifest.tsv").is_file(), f"the shared recordings are expected at {SPEECH}"
    return SPEECH


@pytest.fixture(scope="session")
def speech_rows(speech_dir: Path) -> list[dict]:
    with open(speech_dir / "manifest.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="session")
def speech_manifest(speech_dir, speech_rows):
    """Write a manifest of the shared recordings with the given ids: (path, ids) -> path."""

    def write(path: Path, ids) -> Path:
        rows = [r for r in speech_rows if r["id"] in ids]
        path.write_text("id\tpath\ttext\n" + "".join(
            f"{r['id']}\t{speech_dir / r['path']}\t{r['text']}\n" for r in rows))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_ctc(tmp_path_factory) -> Path:
    return make_tiny_ctc_model(tmp_path_factory.mktemp("tiny-ctc"), seed=1)


@pytest.fixture(scope="session")
def tiny_ctc_layernorm(tmp_path_factory) -> Path:
    return make_tiny_ctc_model(tmp_path_factory.mktemp("tiny-ctc-ln"), seed=2, layer_norm=True)


@pytest.fixture(scope="session")
def tiny_pretraining(tmp_path_factory) -> Path:
    return make_tiny_pretraining_model(tmp_path_factory.mktemp("tiny-pt"), seed=3)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # Tests never touch the network; the hub-unreachable path is tested explicitly.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from w2v_cli import models

    models._unreachable.clear()  # a failed probe is remembered; not from one test to the next


# Property tests explore the same examples on every run (the database is not kept between CI
# runs), so a CI result never depends on luck; run with --hypothesis-seed=random to explore.
from hypothesis import settings  # noqa: E402

settings.register_profile("w2v", derandomize=True, deadline=None)
settings.load_profile("w2v")


class _CodeRunningPayload:
    """Unpickling this touches a file: proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture()
def code_running_pickle():
    """Pickle bytes that, when loaded without weights_only, create `marker`: marker -> bytes."""
    import pickle

    def make(marker: Path) -> bytes:
        return pickle.dumps({"state": _CodeRunningPayload(marker)})

    return make


@pytest.fixture(scope="session")
def load_script():
    """A script of scripts/ imported as a module by name (its main() does not run)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look the module up by name
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def load_exported():
    """load_exported(folder, loader) -> (processor, decode); see _load_exported."""
    return _load_exported


def _load_exported(folder: Path, loader: str):
    """(processor, decode) for a `w2v export` folder, loaded the way a user of `loader` would:
    "pyctcdecode" -- Wav2Vec2Processor and BeamSearchDecoderCTC.load_from_dir(...).decode_beams
    (transformers' migration path, every version); "transformers" -- Wav2Vec2ProcessorWithLM.from_pretrained.
    decode(logits: np.ndarray (batch, frames, vocab), **kwargs) -> list of texts.

    transformers 5.25.0's Wav2Vec2ProcessorWithLM.from_pretrained calls a ProcessorMixin method
    that release removed (it fails on every folder, hub ones included; 5.24 loads ours): that
    exact error skips the "transformers" case, any other fails it."""
    if loader == "transformers":
        import transformers
        from transformers import Wav2Vec2ProcessorWithLM

        try:
            processor = Wav2Vec2ProcessorWithLM.from_pretrained(str(folder))
        except AttributeError as e:
            if "_get_arguments_from_pretrained" not in str(e):
                raise
            pytest.skip(f"transformers {transformers.__version__}: Wav2Vec2ProcessorWithLM.from_pretrained "
                        f"is broken upstream ({e})")
        return processor, lambda logits, **kwargs: processor.batch_decode(logits, **kwargs).text
    from pyctcdecode import BeamSearchDecoderCTC
    from transformers import Wav2Vec2Processor

    processor = Wav2Vec2Processor.from_pretrained(str(folder))
    decoder = BeamSearchDecoderCTC.load_from_dir(str(folder))
    # decode_beams, not decode: decode prunes the beams' history (prune_history=True), which
    # neither w2v nor Wav2Vec2ProcessorWithLM does, and can end on another text
    return processor, lambda logits, **kwargs: [decoder.decode_beams(row, **kwargs)[0][0] for row in logits]
