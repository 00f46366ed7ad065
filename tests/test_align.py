import itertools
import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.align import align_log_probs, ctc_viterbi, label_spans
from w2v_cli.cli import cli
from w2v_cli.errors import DataError
from w2v_cli.testing import make_processor, synth_speechlike
from w2v_cli.timestamps import FrameClock

CLOCK = FrameClock(16000, 320)  # 20 ms frames


def collapse(path, blank=0):
    out, prev = [], None
    for x in path:
        if x != prev and x != blank:
            out.append(x)
        prev = x
    return out


def test_viterbi_finds_the_best_path_that_brute_force_finds():
    rng = np.random.default_rng(0)
    for _ in range(60):
        frames, vocab = int(rng.integers(2, 6)), 3
        log_probs = np.log(rng.dirichlet(np.ones(vocab), size=frames))
        targets = [int(t) for t in rng.integers(1, vocab, size=int(rng.integers(1, 4)))]
        best = max((log_probs[np.arange(frames), list(p)].sum()
                    for p in itertools.product(range(vocab), repeat=frames) if collapse(p) == targets),
                   default=-np.inf)
        if best == -np.inf:
            with pytest.raises(DataError, match="too short"):
                ctc_viterbi(log_probs, targets, 0)
            continue
        states, score = ctc_viterbi(log_probs, targets, 0)
        ext = np.zeros(2 * len(targets) + 1, dtype=int)
        ext[1::2] = targets
        assert score == pytest.approx(best)
        assert collapse(ext[states]) == targets
        assert log_probs[np.arange(frames), ext[states]].sum() == pytest.approx(score)


def peaked(frames, vocab, peaks, p=0.9):
    """log-probs: the given token at each frame (blank 0 elsewhere) with probability p."""
    probs = np.full((frames, vocab), (1 - p) / (vocab - 1))
    tokens = np.zeros(frames, dtype=int)
    for t, token in peaks.items():
        tokens[t] = token
    probs[np.arange(frames), tokens] = p
    return np.log(probs)


def test_repeated_labels_are_separated_by_a_blank():
    # "AA" in exactly 3 frames: the only path is A, blank, A.
    states, _ = ctc_viterbi(peaked(3, 3, {0: 1, 2: 1}), [1, 1], 0)
    assert states.tolist() == [1, 2, 3]
    assert label_spans(states) == [(0, 1), (2, 3)]
    with pytest.raises(DataError, match="2 frames, and CTC needs 3"):
        ctc_viterbi(peaked(2, 3, {}), [1, 1], 0)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_processor(tmp_path_factory.mktemp("proc")).tokenizer


def test_word_and_char_times_from_a_known_path(tokenizer):
    v = tokenizer.get_vocab()
    # HI at frames 2 and 5-6, the delimiter at 9, YO at 12 and 14, over 20 frames.
    log_probs = peaked(20, len(v), {2: v["H"], 5: v["I"], 6: v["I"], 9: v["|"], 12: v["Y"], 14: v["O"]})
    text, log_prob, words = align_log_probs(log_probs, tokenizer, " hi  yo ", CLOCK)
    assert text == "HI YO" and np.isfinite(log_prob)
    assert [(w.word, w.start, w.end) for w in words] == [("HI", pytest.approx(0.04), pytest.approx(0.14)),
                                                        ("YO", pytest.approx(0.24), pytest.approx(0.30))]
    assert [(c.char, c.start, c.end) for c in words[0].chars] == [
        ("H", pytest.approx(0.04), pytest.approx(0.06)), ("I", pytest.approx(0.10), pytest.approx(0.14))]
    assert words[0].chars[1].confidence == pytest.approx(0.9)
    # the word's frames 2..6: three peaked label frames and two blank frames, all p=0.9
    assert words[0].confidence == pytest.approx(0.9)


def test_unknown_characters_keep_their_spelling_with_unk(tokenizer):
    v = tokenizer.get_vocab()
    log_probs = peaked(10, len(v), {1: v["A"], 3: v["<unk>"], 5: v["B"]})
    _, _, words = align_log_probs(log_probs, tokenizer, "AéB", CLOCK, unk=True)
    assert [c.char for c in words[0].chars] == ["A", "É", "B"]
    with pytest.raises(DataError, match="--unk"):
        align_log_probs(log_probs, tokenizer, "AéB", CLOCK)


@pytest.fixture()
def clips(tmp_path):
    for i, seconds in enumerate((1.5, 2.0)):
        sf.write(tmp_path / f"clip{i}.wav", synth_speechlike(seconds, seed=i), 16000)
    return tmp_path


def test_cli_aligns_one_recording_as_json(tiny_ctc, clips):
    result = CliRunner().invoke(cli, ["align", str(clips / "clip0.wav"), "hello world", "-m", str(tiny_ctc), "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "HELLO WORLD" and [w["word"] for w in data["words"]] == ["HELLO", "WORLD"]
    times = [t for w in data["words"] for c in w["chars"] for t in (c["start"], c["end"])]
    assert times == sorted(times) and times[-1] <= 1.5 + 0.004  # one 4 ms frame of the tiny model
    assert all(0 < c["score"] <= 1 for w in data["words"] for c in w["chars"])


def test_cli_manifest_writes_files_and_goes_past_bad_rows(tiny_ctc, clips):
    manifest = clips / "m.tsv"
    manifest.write_text("id\tpath\ttext\na\tclip0.wav\tHI THERE\nb\tmissing.wav\tHI\n"
                        "c\tclip1.wav\tNUMBER 9\nd\tclip1.wav\tOK\n")
    out = clips / "out"
    result = CliRunner().invoke(cli, ["align", "--manifest", str(manifest), "-m", str(tiny_ctc),
                                      "-f", "textgrid", "-o", str(out), "-q"])
    assert result.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.TextGrid", "d.TextGrid"]
    assert "error: c: the transcript has characters the model's vocabulary lacks: '9'" in result.stderr
    assert "error: b:" in result.stderr and "2 of 4 inputs failed" in result.stderr
    assert 'name = "chars"' in (out / "a.TextGrid").read_text()


def test_cli_align_usage_errors(tiny_ctc, clips):
    runner = CliRunner()
    assert "Find when each word" in runner.invoke(cli, ["align", "--help"]).output
    result = runner.invoke(cli, ["align", str(clips / "clip0.wav")])
    assert result.exit_code == 2 and "give AUDIO and TEXT" in result.output
    result = runner.invoke(cli, ["align", "--manifest", str(clips / "m.tsv")])
    assert result.exit_code == 2 and "--manifest needs --output" in result.output
    result = runner.invoke(cli, ["align", str(clips / "clip0.wav"), "A" * 500, "-m", str(tiny_ctc), "-q"])
    assert result.exit_code == 1 and "too short for the transcript" in result.stderr


def test_long_transcripts_follow_the_peaks():
    # 150 labels: more trellis states than an int8 back-pointer can number.
    rng = np.random.default_rng(1)
    targets = [int(t) for t in rng.integers(1, 5, size=150)]
    peaks = {3 * i + 1: t for i, t in enumerate(targets)}
    states, _ = ctc_viterbi(peaked(3 * len(targets) + 2, 5, peaks), targets, 0)
    assert label_spans(states) == [(f, f + 1) for f in peaks]
