import numpy as np
import pytest

from w2v_cli.config import InferenceConfig
from w2v_cli.inference import Engine, array_source
from w2v_cli.models import load_ctc_model
from w2v_cli.testing import make_processor, synth_speechlike
from w2v_cli.timestamps import (
    FrameClock, SubtitleOptions, WordTime, format_timestamp, greedy_words, segment_words, subtitle_cues,
)

PERIOD = FrameClock(16000, 320)  # 20 ms frames, as wav2vec2-base


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_processor(tmp_path_factory.mktemp("proc")).tokenizer


def path_ids(tokenizer, tokens: str) -> np.ndarray:
    """Frame ids from a string with one character per frame: '_' blank, ' ' delimiter."""
    vocab = tokenizer.get_vocab()
    return np.array([vocab["<pad>"] if c == "_" else vocab["|" if c == " " else c] for c in tokens])


def test_greedy_word_and_char_times_from_frames(tokenizer):
    #          frame: 0123456789012
    ids = path_ids(tokenizer, "_HH_I  _YO_OU")
    words = greedy_words(ids, tokenizer, PERIOD)
    assert [w.word for w in words] == ["HI", "YOOU"]
    hi, you = words
    assert (hi.start, hi.end) == pytest.approx((0.02, 0.10))  # H at frames 1-2, I at frame 4
    assert [(c.char, c.start, c.end) for c in hi.chars] == [("H", pytest.approx(0.02), pytest.approx(0.06)),
                                                            ("I", pytest.approx(0.08), pytest.approx(0.10))]
    assert [c.char for c in you.chars] == ["Y", "O", "O", "U"]  # a blank between repeats keeps both O
    assert (you.start, you.end) == pytest.approx((0.16, 0.26))
    assert hi.confidence is None
    assert " ".join(w.word for w in words) == tokenizer.decode(ids.tolist())


def test_confidence_is_mean_max_probability_over_the_word_frames(tokenizer):
    ids = path_ids(tokenizer, "_HI_ A")
    probs = np.full((len(ids), len(tokenizer)), 0.01)
    probs[np.arange(len(ids)), ids] = [0.9, 0.8, 0.6, 0.5, 0.9, 0.7]
    words = greedy_words(ids, tokenizer, PERIOD, np.log(probs))
    assert words[0].confidence == pytest.approx(0.7)  # frames 1-2: (0.8 + 0.6) / 2
    assert words[1].confidence == pytest.approx(0.7)
    assert words[0].chars[1].confidence == pytest.approx(0.6)


def test_times_follow_recorded_frame_positions(tokenizer):
    ids = path_ids(tokenizer, "A_B")
    clock = FrameClock(16000, 320, np.array([0, 320, 1280]))  # a gap after frame 1, as chunks can leave
    [word] = greedy_words(ids, tokenizer, clock)
    assert (word.chars[1].start, word.end) == pytest.approx((0.08, 0.10))


@pytest.mark.parametrize("chunk_s,stride_s", [(2.0, 0.5), (2.01, 0.503)])
def test_engine_frame_positions_are_exact_across_chunks(tiny_ctc, chunk_s, stride_s):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    x = synth_speechlike(7.3, seed=3)
    options = InferenceConfig(progress=False, chunk_s=chunk_s, stride_s=stride_s, batch_size=2)
    [plain] = Engine(loaded, options).run([array_source("x", x, 16000)])
    [kept] = Engine(loaded, options, keep_log_probs=True).run([array_source("x", x, 16000)])
    assert kept.text == plain.text and np.array_equal(kept.frame_ids, plain.frame_ids)
    assert np.array_equal(kept.log_probs.argmax(-1), kept.frame_ids)
    assert np.allclose(np.exp(kept.log_probs).sum(-1), 1, atol=1e-4)
    positions = kept.frame_samples
    assert len(positions) == len(kept.frame_ids) and np.all(np.diff(positions) > 0)
    assert positions[-1] < len(x) and np.all(positions % 64 == (positions[0] % 64))
    naive = np.arange(len(positions)) * 64
    if chunk_s == 2.0:  # whole frames: the kept frames of consecutive chunks are contiguous
        assert np.array_equal(positions, naive)
    else:  # 2.01 s is not whole frames: kept frames drift from index x period, recorded exactly
        assert not np.array_equal(positions, naive)


def words(*spans):
    return [WordTime(w, s, e, 0.9) for w, s, e in spans]


def test_segments_split_at_pauses_and_length():
    ws = words(("A", 0.0, 0.2), ("B", 0.3, 0.5), ("C", 1.2, 1.4), ("D", 1.5, 1.6))
    segments = segment_words(ws, pause_s=0.5)
    assert [(s["start"], s["end"], s["text"]) for s in segments] == [(0.0, 0.5, "A B"), (1.2, 1.6, "C D")]
    assert segments[1]["words"][0] == {"word": "C", "start": 1.2, "end": 1.4, "confidence": 0.9}
    assert [s["text"] for s in segment_words(ws, pause_s=5, max_segment_s=1.0)] == ["A B", "C D"]


def test_cues_wrap_by_width_words_and_line_count():
    segments = segment_words(words(("one", 0, 0.2), ("two", 0.3, 0.5), ("three", 0.6, 0.9),
                                   ("four", 1.0, 1.2), ("five", 3.0, 3.2)), pause_s=1.0)
    assert [c.text for c in subtitle_cues(segments)] == ["one two three four", "five"]
    by_width = subtitle_cues(segments, SubtitleOptions(max_line_width=9))
    assert [c.text for c in by_width] == ["one two", "three", "four", "five"]
    assert (by_width[1].start, by_width[1].end) == (0.6, 0.9)
    two_lines = subtitle_cues(segments, SubtitleOptions(max_line_width=9, max_line_count=2))
    assert [c.lines for c in two_lines] == [["one two", "three"], ["four"], ["five"]]
    assert [c.text for c in subtitle_cues(segments, SubtitleOptions(max_words_per_line=3))] == [
        "one two three", "four", "five"]


def test_format_timestamp():
    assert format_timestamp(3723.4567) == "01:02:03.457"
    assert format_timestamp(0.0014, ",") == "00:00:00,001"
    assert format_timestamp(59.9996) == "00:01:00.000"
