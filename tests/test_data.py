"""Data sources: manifests, LibriSpeech / TIMIT / audio+.txt folders, hf: datasets, the
hub's offline failure, and bad items."""

import io
import json
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from w2v_cli import data as data_module
from w2v_cli.config import DataConfig
from w2v_cli.data import Utterance, load_dataset, parse_hf_spec
from w2v_cli.errors import AudioError, DataError
from w2v_cli.testing import synth_speechlike


def write_audio(path, seconds, seed=0, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = synth_speechlike(seconds, seed=seed)
    sf.write(path, samples, 16000, **kwargs)
    return samples


def flac_bytes(seconds, seed=0, sample_rate=16000):
    buffer = io.BytesIO()
    sf.write(buffer, synth_speechlike(seconds, sample_rate, seed=seed), sample_rate, format="FLAC")
    return buffer.getvalue()


# -- manifests ----------------------------------------------------------------------------


def test_shared_manifest_reads_as_it_is(speech_dir, speech_rows):
    dataset = load_dataset(str(speech_dir / "manifest.tsv"))
    assert [u.id for u in dataset.utterances] == [r["id"] for r in speech_rows]
    first = dataset.utterances[0]
    assert first.text == speech_rows[0]["text"]
    assert first.duration_s == pytest.approx(float(speech_rows[0]["duration_s"]))
    assert first.path == str(speech_dir / speech_rows[0]["path"])
    assert dataset.skipped == []


def test_manifest_columns_can_be_named(tmp_path, speech_dir):
    audio = speech_dir / "audio" / "LJ001-0002.wav"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"clip,words,raw\n{audio},in being comparatively modern,IN BEING\n")
    with pytest.raises(DataError, match="lacks an audio path column and a text column.*--audio-column"):
        load_dataset(str(manifest))
    dataset = load_dataset(str(manifest), DataConfig(audio_column="clip", text_column="words"))
    [utt] = dataset.utterances
    assert (utt.id, utt.text) == ("LJ001-0002", "in being comparatively modern")
    assert utt.duration_s == pytest.approx(1.9, abs=0.01)  # from the header: the manifest has none
    with pytest.raises(DataError, match="no column 'txt' for the transcript; columns are clip, words, raw"):
        load_dataset(str(manifest), DataConfig(audio_column="clip", text_column="txt"))


def test_bad_items_are_skipped_by_id_and_a_wholly_bad_source_is_an_error(tmp_path):
    write_audio(tmp_path / "good.wav", 1.0)
    (tmp_path / "broken.wav").write_text("not audio")
    rows = [{"id": "good", "path": "good.wav", "text": "hello"},
            {"id": "gone", "path": "missing.wav", "text": "hello"},
            {"id": "broken", "path": "broken.wav", "text": "hello"},
            {"id": "silent", "path": "good.wav", "text": "  "},
            {"id": "good", "path": "good.wav", "text": "again"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = load_dataset(str(manifest))
    assert [u.id for u in dataset.utterances] == ["good"]
    reasons = dict(dataset.skipped)
    assert list(reasons) == ["gone", "broken", "silent", "good"]
    assert "missing.wav: file not found" in reasons["gone"]
    assert "not a readable audio file" in reasons["broken"]
    assert reasons["silent"] == "empty transcript" and reasons["good"] == "duplicate id"
    with pytest.raises(DataError, match="4 bad items, first gone"):
        load_dataset(str(manifest), DataConfig(on_bad_item="stop"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows[1:3]))
    with pytest.raises(DataError, match=f"dataset {bad}: no usable utterances \\(gone: .*file not found"):
        load_dataset(str(bad))


def test_max_items_and_duration_filters(tmp_path):
    for i, seconds in enumerate((0.5, 1.5, 2.5, 3.5)):
        write_audio(tmp_path / f"c{i}.wav", seconds, seed=i)
        (tmp_path / f"c{i}.txt").write_text(f"clip {i}\n")
    ids = lambda **kw: [u.id for u in load_dataset(str(tmp_path), DataConfig(**kw)).utterances]  # noqa: E731
    assert ids() == ["c0", "c1", "c2", "c3"]
    assert ids(min_duration_s=1.0, max_duration_s=3.0) == ["c1", "c2"]
    assert ids(max_items=2, min_duration_s=1.0) == ["c1", "c2"]


def test_unknown_spec_names_what_a_spec_can_be(tmp_path):
    with pytest.raises(DataError, match="'nowhere.tsv' not found.*manifest.*hf:<repo>.*librispeech_dummy"):
        load_dataset("nowhere.tsv")
    with pytest.raises(DataError, match="no dataset given; pass --dataset"):
        load_dataset("")
    (tmp_path / "notes.md").write_text("nothing here")
    with pytest.raises(DataError, match=f"folder {tmp_path} holds no dataset"):
        load_dataset(str(tmp_path))


# -- folders ------------------------------------------------------------------------------


def test_librispeech_layout(tmp_path, speech_dir):
    chapter = tmp_path / "test-clean" / "1089" / "134691"
    chapter.mkdir(parents=True)
    shutil.copy(speech_dir / "audio" / "1089-134691-0000.flac", chapter)
    write_audio(chapter / "1089-134691-0001.wav", 1.0)  # a converted copy
    (chapter / "1089-134691.trans.txt").write_text(
        "1089-134691-0000 HE COULD WAIT NO LONGER\n"
        "1089-134691-0001 FOR A FULL HOUR\n"
        "1089-134691-0002 GONE FOR GOOD\n"
    )
    dataset = load_dataset(str(tmp_path / "test-clean"))
    assert [(u.id, u.text) for u in dataset.utterances] == [
        ("1089-134691-0000", "HE COULD WAIT NO LONGER"), ("1089-134691-0001", "FOR A FULL HOUR")]
    assert dataset.utterances[0].duration_s == pytest.approx(2.085, abs=1e-3)
    assert dataset.utterances[1].path.endswith("1089-134691-0001.wav")
    [(uid, reason)] = dataset.skipped
    assert uid == "1089-134691-0002" and "1089-134691-0002.flac: file not found" in reason


def write_timit_utterance(folder, name, text, seconds, seed, upper=True):
    """One TIMIT utterance: NIST SPHERE audio, .TXT with sample offsets, .WRD and .PHN."""
    ext = (lambda e: e.upper()) if upper else (lambda e: e.lower())
    samples = write_audio(folder / f"{name}.{ext('wav')}", seconds, seed=seed, format="NIST", subtype="PCM_16")
    n = len(samples)
    (folder / f"{name}.{ext('txt')}").write_text(f"0 {n} {text}\n")
    words = text.rstrip(".").lower().split()
    step = n // (len(words) + 2)
    (folder / f"{name}.{ext('wrd')}").write_text(
        "".join(f"{(i + 1) * step} {(i + 2) * step} {w}\n" for i, w in enumerate(words)))
    phones = ["h#", "sh", "iy", "hv", "ae", "dcl", "h#"]
    (folder / f"{name}.{ext('phn')}").write_text(
        "".join(f"{i * 100} {(i + 1) * 100} {p}\n" for i, p in enumerate(phones)))
    return samples, phones


def test_timit_layout_either_case(tmp_path):
    root = tmp_path / "TIMIT" / "TEST"
    sa1, phones = write_timit_utterance(root / "DR1" / "FAKS0", "SA1",
                                        "She had your dark suit in greasy wash water all year.", 1.2, 1)
    write_timit_utterance(root / "dr2" / "mdab0", "sx1", "Don't ask me to carry an oily rag like that.",
                          0.8, 2, upper=False)
    (root / "DR1" / "FAKS0" / "SX2.PHN").write_text("0 100 h#\n")  # labels without audio
    dataset = load_dataset(str(tmp_path / "TIMIT"))
    by_id = {u.id: u for u in dataset.utterances}
    assert set(by_id) == {"FAKS0_SA1", "mdab0_sx1"}
    utt = by_id["FAKS0_SA1"]
    assert utt.text == "She had your dark suit in greasy wash water all year."  # offsets stripped
    assert utt.phones == phones
    assert by_id["mdab0_sx1"].text == "Don't ask me to carry an oily rag like that."
    assert utt.duration_s == pytest.approx(1.2)
    np.testing.assert_allclose(utt.load(), sa1, atol=1e-4)  # NIST SPHERE decodes (16-bit PCM)
    [(uid, reason)] = dataset.skipped
    assert uid == "FAKS0_SX2" and "no SX2.WAV" in reason


def test_timit_words_stand_in_for_a_missing_txt(tmp_path):
    folder = tmp_path / "TEST" / "DR1" / "FAKS0"
    write_timit_utterance(folder, "SI1", "Cold weather.", 0.5, 3)
    (folder / "SI1.TXT").unlink()
    [utt] = load_dataset(str(tmp_path)).utterances
    assert utt.text == "cold weather"


def test_audio_folder_with_same_name_transcripts(tmp_path):
    write_audio(tmp_path / "a" / "one.wav", 1.0)
    (tmp_path / "a" / "one.txt").write_text("first  clip\n")
    write_audio(tmp_path / "two.flac", 0.5, format="FLAC")
    (tmp_path / "two.txt").write_text("")
    write_audio(tmp_path / "three.wav", 0.5)
    dataset = load_dataset(str(tmp_path))
    assert [(u.id, u.text) for u in dataset.utterances] == [("a/one", "first clip")]
    reasons = dict(dataset.skipped)
    assert "expected three.txt beside" in reasons["three"] and reasons["two"] == "empty transcript"


# -- hf: datasets -------------------------------------------------------------------------


@pytest.fixture()
def saved_dataset(tmp_path):
    """A DatasetDict saved with save_to_disk: FLAC bytes in an Audio column (one corrupt),
    transcripts in 'sentence', no id column."""
    import datasets

    rows = {"audio": [{"bytes": flac_bytes(1.0, 0), "path": "a.flac"},
                      {"bytes": flac_bytes(0.5, 1, sample_rate=8000), "path": "b.flac"},
                      {"bytes": b"garbage", "path": "c.flac"}],
            "sentence": ["hello world", "good bye", "broken"],
            "speaker": ["s1", "s2", "s3"]}
    split = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio())
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": split.select([0]), "test": split}).save_to_disk(str(folder))
    return folder


def test_hf_saved_to_disk(saved_dataset):
    dataset = load_dataset(f"hf:{saved_dataset}:test")
    assert [(u.id, u.text) for u in dataset.utterances] == [("000000", "hello world"), ("000001", "good bye")]
    assert [u.duration_s for u in dataset.utterances] == pytest.approx([1.0, 0.5])
    assert dataset.skipped[0][0] == "000002" and "not readable audio" in dataset.skipped[0][1]
    first, second = dataset.utterances
    np.testing.assert_allclose(first.load(), synth_speechlike(1.0, seed=0), atol=1e-4)
    assert len(second.load()) == 8000  # 0.5 s stored at 8 kHz, resampled to 16 kHz
    assert len(second.load(8000)) == 4000
    # No split named: 'test' is preferred; the folder alone (no hf:) reads the same.
    assert [u.id for u in load_dataset(str(saved_dataset)).utterances] == ["000000", "000001"]
    assert [u.id for u in load_dataset(f"hf:{saved_dataset}:train").utterances] == ["000000"]
    with pytest.raises(DataError, match="no split 'dev'; its splits are train, test"):
        load_dataset(f"hf:{saved_dataset}:dev")
    with pytest.raises(DataError, match="no column 'words' for the transcript; columns are audio, sentence, speaker"):
        load_dataset(f"hf:{saved_dataset}:test", DataConfig(text_column="words"))


def test_hf_path_column_and_guessed_names(tmp_path):
    import datasets

    write_audio(tmp_path / "clips" / "x.wav", 0.7)
    folder = tmp_path / "paths"
    datasets.Dataset.from_dict({"file": ["clips/x.wav"], "transcription": ["x marks"], "id": ["utt-x"]}) \
        .save_to_disk(str(folder))
    shutil.move(str(tmp_path / "clips"), str(folder / "clips"))  # paths are relative to the dataset
    [utt] = load_dataset(f"hf:{folder}").utterances
    assert (utt.id, utt.text, utt.path) == ("utt-x", "x marks", str(folder / "clips" / "x.wav"))
    assert utt.duration_s == pytest.approx(0.7)


def test_hf_spec_parsing(tmp_path):
    assert parse_hf_spec("org/ds") == data_module.HubSpec("org/ds")
    assert parse_hf_spec("org/ds:clean") == data_module.HubSpec("org/ds", "clean")
    assert parse_hf_spec("org/ds:test[:10]").split == "test[:10]"
    assert parse_hf_spec("org/ds:train.clean.100").split == "train.clean.100"
    assert parse_hf_spec("org/ds:clean:validation") == data_module.HubSpec("org/ds", "clean", "validation")
    assert parse_hf_spec(f"{tmp_path}:dev") == data_module.HubSpec(str(tmp_path), None, "dev")
    with pytest.raises(DataError, match="expected hf:<repo>"):
        parse_hf_spec("a:b:c:d")


def test_uncached_hub_dataset_fails_fast_offline(monkeypatch):
    started = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_dataset("librispeech_dummy")
    assert time.perf_counter() - started < 10
    message = str(e.value)
    assert "'librispeech_dummy' (hf-internal-testing/librispeech_asr_dummy, config clean, split validation)" in message
    assert "not in the Hugging Face datasets cache" in message and "HF_HUB_OFFLINE is set" in message
    assert "Point --dataset at a local copy" in message

    # Without HF_HUB_OFFLINE the hub is tried only when it answers; here it does not.
    import w2v_cli.models

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(w2v_cli.models, "hub_reachable", lambda timeout_s=3.0: False)
    with pytest.raises(DataError, match="nobody/nothing.*the hub cannot be reached"):
        load_dataset("hf:nobody/nothing:test")


def test_cached_hub_dataset_and_local_parquet_load_without_the_hub(tmp_path, monkeypatch):
    """A hub dataset in the datasets cache (here one laid out as a download leaves it) is
    read with no network, and the hub is not even probed; so is a local parquet folder."""
    import datasets
    from datasets.packaged_modules.parquet.parquet import Parquet

    import w2v_cli.models

    table = datasets.Dataset.from_dict({
        "audio": [{"bytes": flac_bytes(0.6, 4), "path": "1272-128104-0000.flac"}],
        "text": ["MISTER QUILTER"], "id": ["1272-128104-0000"], "file": ["/nonexistent/1272-128104-0000.flac"],
    }).cast_column("audio", datasets.Audio())
    (tmp_path / "local").mkdir()
    table.to_parquet(str(tmp_path / "local" / "validation.parquet"))
    builder = Parquet(cache_dir=str(tmp_path / "build"), dataset_name="librispeech_asr_dummy", config_name="clean",
                      data_files={"validation": str(tmp_path / "local" / "validation.parquet")}, hash="0123abcd")
    builder.download_and_prepare()
    cache = tmp_path / "cache"
    shutil.copytree(builder.cache_dir, cache / "hf-internal-testing___librispeech_asr_dummy" / "clean" / "0.0.0" / "0123abcd")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def no_probe(timeout_s=3.0):
        raise AssertionError("the hub must not be probed for a cached dataset")

    monkeypatch.setattr(w2v_cli.models, "hub_reachable", no_probe)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    dataset = load_dataset("librispeech_dummy")
    assert datasets.config.HF_HUB_OFFLINE is False  # the cache-only switch is undone
    [utt] = dataset.utterances
    assert (utt.id, utt.text, utt.path) == ("1272-128104-0000", "MISTER QUILTER", None)
    assert len(utt.load()) == round(0.6 * 16000)
    # The same parquet file in a local folder, read by datasets' own builder.
    [local] = load_dataset(f"hf:{tmp_path / 'local'}").utterances
    assert (local.id, local.text, local.duration_s) == ("1272-128104-0000", "MISTER QUILTER", pytest.approx(0.6))


def test_decoded_bytes_errors_name_the_item():
    with pytest.raises(AudioError, match="utt-7: audio bytes are not readable audio"):
        data_module.decode_audio_bytes(b"RIFF....", "utt-7")
    utt = Utterance("u", "text", read=lambda: np.zeros(16000, dtype=np.float32))
    assert len(utt.load(8000)) == 8000 and len(next(utt.blocks())) == 16000
