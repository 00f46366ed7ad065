import numpy as np
import pytest
import soundfile as sf

from w2v_cli.audio import audio_info, load_audio, stream_audio
from w2v_cli.errors import AudioError
from w2v_cli.testing import synth_speechlike


def test_every_shared_recording_loads_at_16k_mono_with_right_duration(speech_dir, speech_rows):
    formats = set()
    for row in speech_rows:
        samples = load_audio(speech_dir / row["path"])
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert abs(len(samples) / 16000 - float(row["duration_s"])) <= 0.01, row["id"]
        formats.add((row["path"].rsplit(".", 1)[1], row["sample_rate"], row["channels"]))
    # FLAC 16 kHz, WAV 22.05 kHz, MP3 48 kHz and FLAC 44.1 kHz stereo are all covered
    assert {("flac", "16000", "1"), ("wav", "22050", "1"), ("mp3", "48000", "1"), ("flac", "44100", "2")} <= formats


def test_blockwise_read_equals_whole_read(speech_dir, speech_rows):
    row = next(r for r in speech_rows if r["sample_rate"] == "22050")
    whole = load_audio(speech_dir / row["path"])
    blocks = list(stream_audio(speech_dir / row["path"], block_s=0.37))
    assert len(blocks) > 10
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_formats_channels_and_rates(tmp_path):
    x = synth_speechlike(1.0, 8000)
    stereo = np.stack([x, -x * 0.5], axis=1)
    sf.write(tmp_path / "a.wav", stereo, 8000, subtype="PCM_24")
    sf.write(tmp_path / "b.sph", x, 16000, format="NIST", subtype="PCM_16")
    sf.write(tmp_path / "c.flac", x, 44100)
    a = load_audio(tmp_path / "a.wav")
    assert len(a) == 16000 and abs(a.mean()) < 0.1
    np.testing.assert_allclose(load_audio(tmp_path / "b.sph"), x, atol=1e-4)
    assert abs(len(load_audio(tmp_path / "c.flac")) - 16000 / 44100 * 8000) <= 1
    info = audio_info(tmp_path / "a.wav")
    assert (info.sample_rate, info.channels, info.frames) == (8000, 2, 8000)


@pytest.mark.parametrize("case,reason", [
    ("missing", "not found"),
    ("empty", "empty (0 bytes)"),
    ("text", "not a readable audio file"),
    ("zero", "no audio frames"),
    ("nan", "NaN or infinite"),
    ("folder", "is a folder"),
])
def test_bad_files_raise_audio_error_naming_path(tmp_path, case, reason):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not audio\n" * 20)
    elif case == "zero":
        sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    elif case == "nan":
        x = np.zeros(1600, dtype=np.float32)
        x[100] = np.nan
        sf.write(path, x, 16000, subtype="FLOAT")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(path) in str(e.value) and reason in str(e.value)


def test_a_file_too_short_to_resample_is_refused_by_name(tmp_path):
    # found by hypothesis: 1 frame at 32001 Hz gives no sample at 16 kHz
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.5], dtype=np.float32), 32001)
    with pytest.raises(AudioError, match="one.wav: too short: 1 frame"):
        load_audio(path)
