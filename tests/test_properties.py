"""Property-based tests: whatever bytes, headers, manifests or configs come in, nothing but
the project's own errors (W2VError subclasses) comes out."""

import dataclasses
import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from w2v_cli.audio import audio_info, load_audio
from w2v_cli.config import Config, DataConfig, load_config
from w2v_cli.data import load_dataset
from w2v_cli.errors import AudioError, ConfigError, W2VError

# database=None: no .hypothesis/ folder in the checkout.
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(np.arange(1600) / 5)).astype(np.float32), 16000, format=fmt,
             subtype="PCM_16")
    return buffer.getvalue()


WAV, FLAC = _encoded("WAV"), _encoded("FLAC")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def read_or_refuse(path) -> None:
    """audio_info and load_audio either succeed with finite float32 mono or raise AudioError."""
    for read in (audio_info, load_audio):
        try:
            result = read(path)
        except AudioError as e:
            assert str(path) in str(e)
            continue
        if read is load_audio:
            assert result.dtype == np.float32 and result.ndim == 1 and np.isfinite(result).all()


@FAST
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ".sph"]))
def test_random_bytes(folder, data, suffix):
    path = folder / f"random{suffix}"
    path.write_bytes(data)
    read_or_refuse(path)


@FAST
@given(edits=st.lists(st.tuples(st.integers(0, 80), st.binary(min_size=1, max_size=4)), max_size=4),
       keep=st.floats(0.0, 1.0), kind=st.sampled_from(["wav", "flac"]))
def test_damaged_real_files(folder, edits, keep, kind):
    data = bytearray(WAV if kind == "wav" else FLAC)
    for position, replacement in edits:
        data[position:position + len(replacement)] = replacement
    path = folder / f"damaged.{kind}"
    path.write_bytes(bytes(data[: max(1, int(len(data) * keep))]))
    read_or_refuse(path)


@FAST
@given(rate=st.integers(0, 2**32 - 1), channels=st.integers(0, 2**16 - 1), bits=st.integers(0, 2**16 - 1),
       data_size=st.integers(0, 2**32 - 1))
def test_wav_header_fields(folder, rate, channels, bits, data_size):
    data = bytearray(WAV)
    data[22:24] = struct.pack("<H", channels)
    data[24:28] = struct.pack("<I", rate)
    data[34:36] = struct.pack("<H", bits)
    data[40:44] = struct.pack("<I", data_size)
    path = folder / "fields.wav"
    path.write_bytes(bytes(data))
    read_or_refuse(path)


# -- manifests ----------------------------------------------------------------------------------

TOKENS = list('ab,\t"\n\r\\ .{}[]:\x00é') + ["path", "text", "id", "a.wav", "\ufeff", "duration_s"]
manifest_text = st.lists(st.sampled_from(TOKENS), max_size=50).map("".join)


def load_or_refuse(path) -> None:
    try:
        dataset = load_dataset(str(path), DataConfig())
    except W2VError:
        return
    assert dataset.utterances  # load_dataset raises rather than return nothing


@FAST
@given(body=manifest_text, suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]), header=st.booleans())
def test_manifest_text(folder, body, suffix, header):
    (folder / "a.wav").write_bytes(WAV)
    path = folder / f"m{suffix}"
    head = {".tsv": "path\ttext\n", ".csv": "path,text\n", ".jsonl": ""}[suffix] if header else ""
    path.write_text(head + body, encoding="utf-8")
    load_or_refuse(path)


@FAST
@given(body=st.binary(max_size=120), suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]))
def test_manifest_bytes(folder, body, suffix):
    path = folder / f"b{suffix}"
    path.write_bytes(body)
    load_or_refuse(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.just("a.wav"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(rows=st.lists(st.dictionaries(st.sampled_from(["path", "text", "id", "duration_s", "audio", "sentence"]),
                                     json_values, max_size=4), min_size=1, max_size=4))
def test_manifest_jsonl_values(folder, rows):
    (folder / "a.wav").write_bytes(WAV)
    path = folder / "j.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    load_or_refuse(path)


# -- configs ------------------------------------------------------------------------------------


def config_or_refuse(*args, **kwargs) -> None:
    try:
        load_config(*args, **kwargs)
    except ConfigError:
        pass


@FAST
@given(text=st.text(max_size=200))
def test_config_text(folder, text):
    path = folder / "c.yaml"
    path.write_text(text, encoding="utf-8")
    config_or_refuse(path)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**1024) | st.floats()
    | st.text(max_size=8) | st.dates() | st.sampled_from(["3e-4", "nan", "-.inf", "1e999", "auto", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@FAST
@given(data=st.dictionaries(
    st.sampled_from(["model", "inference", "train", "data", "text", "audio", "eval", "bogus"]),
    yaml_values | st.dictionaries(
        st.sampled_from(["name", "batch_size", "learning_rate", "architecture", "revision", "progress",
                         "case", "chunk_s", "on_bad_item", "x"]), yaml_values, max_size=4),
    max_size=3))
def test_config_structures(folder, data):
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    config_or_refuse(path)


REAL_KEYS = [(f.name, k.name) for f in dataclasses.fields(Config) for k in dataclasses.fields(f.type if isinstance(f.type, type) else type(getattr(Config(), f.name)))]


@FAST
@given(assignments=st.lists(st.tuples(st.sampled_from(REAL_KEYS), yaml_values), min_size=1, max_size=4))
def test_every_real_key_with_any_value(folder, assignments):
    data: dict = {}
    for (section, key), value in assignments:
        data.setdefault(section, {})[key] = value
    path = folder / "k.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    config_or_refuse(path)


@FAST
@given(item=st.text(max_size=40) | st.builds("{}={}".format, st.sampled_from(
    ["train.learning_rate", "inference.batch_size", "model.name", "model.architecture", "text.case"]),
    st.text(max_size=20)))
def test_set_overrides(item):
    config_or_refuse(overrides=[item])
