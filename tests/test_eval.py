"""`w2v eval`: scoring, the report files, skipped items and the command line."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import jiwer
import pytest
from click.testing import CliRunner

from w2v_cli import evaluate as evaluate_module
from w2v_cli.cli import cli
from w2v_cli.config import Config
from w2v_cli.data import Dataset, Utterance, load_dataset
from w2v_cli.errors import AudioError, DataError
from w2v_cli.evaluate import evaluate
from w2v_cli.inference import Transcription
from w2v_cli.models import load_ctc_model
from w2v_cli.text import normalize_text
from w2v_cli.transcribe import transcribe_paths

SHORT = ("1089-134691-0000", "LJ001-0002", "cmu_arctic_us_axb_a0005")  # 2.1 s, 1.9 s, 1.6 s


@pytest.fixture()
def manifest(tmp_path, speech_manifest):
    """Three short shared recordings (one with punctuation and mixed case in its text)."""
    return speech_manifest(tmp_path / "short.tsv", SHORT)


def quiet_config(**sections) -> Config:
    config = Config()
    config.inference.progress = False
    for dotted, value in sections.items():
        section, key = dotted.split("__")
        setattr(getattr(config, section), key, value)
    return config


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_report_files_agree_with_jiwer_and_the_transcribe_engine(tiny_ctc, manifest, tmp_path):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    dataset = load_dataset(str(manifest))
    config = quiet_config()
    result = evaluate(loaded, dataset, config, tmp_path / "out")

    rows = read_jsonl(tmp_path / "out" / "utterances.jsonl")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    refs, hyps = [r["reference"] for r in rows], [r["hypothesis"] for r in rows]
    assert [r["id"] for r in rows] == [u.id for u in dataset.utterances]
    assert summary["wer"] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert summary["cer"] == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert summary["wer"] == result.wer and summary["utterances"] == 3 and summary["skipped"] == 0
    assert summary["normalization"].startswith("Unicode NFC, lower-case")
    for row in rows:
        counts = jiwer.process_words(row["reference"], row["hypothesis"])
        assert (row["substitutions"], row["deletions"], row["insertions"]) == (
            counts.substitutions, counts.deletions, counts.insertions)
    # References are normalised as configured (LJ001-0002's text ends with a full stop).
    assert rows[1]["reference"] == "in being comparatively modern"
    # Hypotheses are what `w2v transcribe` prints for the same files, normalised.
    transcripts = [r.text for r in transcribe_paths(loaded, [Path(u.path) for u in dataset.utterances], config)]
    assert hyps == [normalize_text(text) for text in transcripts]
    assert summary["audio_s"] == pytest.approx(2.085 + 1.9 + 1.565, abs=0.01)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## The 3 worst utterances" in report and "REF: " in report and "HYP: " in report
    # sclite's trn files: the same texts and ids, so its recount is jiwer's
    for name, texts in (("ref.trn", refs), ("hyp.trn", hyps)):
        lines = (tmp_path / "out" / name).read_text().splitlines()
        assert lines == [f"{text} ({row['id']})" for text, row in zip(texts, rows)]


class FakeEngine:
    """Stands in for transcribe_sources with known hypotheses (None = the audio fails)."""

    def __init__(self, hypotheses: dict[str, str | None]):
        self.hypotheses = hypotheses
        self.sources = []

    def __call__(self, loaded, sources, options, keep_log_probs=False):
        self.sources = sources
        for source in sources:
            text = self.hypotheses[source.key]
            yield Transcription(source.key, error="audio went away") if text is None else \
                Transcription(source.key, text, source.duration_s or 0.0)


def test_wer_and_cer_of_known_hypotheses(tiny_ctc, monkeypatch, tmp_path):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    utterances = [Utterance("a", "Hello, World!", duration_s=1.0), Utterance("b", "the cat sat", duration_s=2.0),
                  Utterance("c", "unheard", duration_s=1.0), Utterance("d", "?!", duration_s=1.0)]
    fake = FakeEngine({"a": "HELLO WORD", "b": "THE CAT SAT DOWN", "c": None, "d": "HM"})
    monkeypatch.setattr(evaluate_module, "transcribe_sources", fake)
    loaded.model.train()
    result = evaluate(loaded, Dataset("toy", utterances, [("z", "empty transcript")]), quiet_config(eval__worst=1),
                      tmp_path)
    assert [s.key for s in fake.sources] == ["a", "b", "c", "d"]
    assert loaded.model.training  # given back in the mode it came in
    # a: 'hello world' vs 'hello word' = 1 S; b: 1 I; c: unreadable; d: no words left to score.
    assert (result.substitutions, result.deletions, result.insertions, result.hits) == (1, 0, 1, 4)
    assert result.wer == pytest.approx(2 / 5)
    assert result.cer == pytest.approx((1 + 5) / (len("hello world") + len("the cat sat")))
    assert result.utterances == 2 and result.audio_s == 3.0
    assert result.skipped == [("z", "empty transcript"), ("c", "audio went away"),
                              ("d", "empty transcript after normalisation")]
    report = (tmp_path / "report.md").read_text()
    assert "## The 1 worst utterances" in report and "### 1. a: WER 50.0 %" in report
    assert "REF: hello world\nHYP: hello  word\n               S\n" in report
    assert "- `c`: audio went away" in report
    config = quiet_config(data__on_bad_item="stop")
    with pytest.raises(DataError, match="toy: c: audio went away"):
        evaluate(loaded, Dataset("toy", utterances), config)


def test_audio_that_fails_in_the_engine_is_skipped_and_nothing_scored_is_an_error(tiny_ctc, manifest):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    dataset = load_dataset(str(manifest))

    def fail():
        raise AudioError("bytes-of-x", "audio bytes are not readable audio")

    dataset.utterances.insert(1, Utterance("x", "some words", read=fail, duration_s=1.0))
    result = evaluate(loaded, dataset, quiet_config())
    assert result.utterances == 3
    assert result.skipped == [("x", "audio bytes are not readable audio")]
    with pytest.raises(DataError, match="dataset only-bad: no utterance could be scored \\(x: audio bytes"):
        evaluate(loaded, Dataset("only-bad", [dataset.utterances[1]]), quiet_config())


# -- command line -------------------------------------------------------------------------


def test_cli_eval_prints_the_table_and_writes_the_report(tiny_ctc, manifest, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(manifest), "--model", str(tiny_ctc), "-o", str(out), "--max-items", "2",
            "--batch-size", "2", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    table = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert table["dataset"] == str(manifest) and table["model"] == str(tiny_ctc)
    assert table["utterances"] == "2" and table["skipped"] == "0"
    summary = json.loads((out / "summary.json").read_text())
    assert table["WER"].startswith(f"{100 * summary['wer']:.2f} % (S {summary['substitutions']}")
    assert "RTF" in table["speed"] and "s of audio per second" in table["speed"]
    assert len(read_jsonl(out / "utterances.jsonl")) == 2
    assert result.stderr == ""


def test_cli_eval_reports_skipped_items_on_stderr_and_exits_0(tiny_ctc, tmp_path, speech_dir):
    (tmp_path / "bad.wav").write_text("not audio")
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"path\ttext\n{speech_dir / 'audio' / 'LJ001-0002.wav'}\thello\nbad.wav\thello\n")
    result = CliRunner().invoke(cli, ["eval", "-d", str(manifest), "-m", str(tiny_ctc), "-q"])
    assert result.exit_code == 0, result.output
    assert "skipped: bad: " in result.stderr and "not a readable audio file" in result.stderr
    assert "1 of 2 items skipped" in result.stderr
    assert "skipped        1" in result.stdout


def test_cli_eval_bad_input(tiny_ctc, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "--dataset", str(tmp_path / "none.tsv"), "-m", str(tiny_ctc)])
    assert result.exit_code == 1
    assert "Error: dataset" in result.stderr and "none.tsv' not found" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["eval", "-m", str(tiny_ctc)])
    assert result.exit_code == 1 and "no dataset given; pass --dataset" in result.stderr
    manifest = tmp_path / "gone.tsv"
    manifest.write_text("path\ttext\nmissing.flac\thello\n")
    result = runner.invoke(cli, ["eval", "-d", str(manifest), "-m", str(tiny_ctc)])
    assert result.exit_code == 1 and "no usable utterances (missing: " in result.stderr


def test_eval_beam_search_with_an_lm_is_what_transcribe_gives(tiny_ctc, manifest, tmp_path):
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from w2v_cli.lm import build_lm

    (tmp_path / "lm.txt").write_text("IN BEING COMPARATIVELY MODERN\nHELLO WORLD\n")
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2)
    beam = ["--lm", str(tmp_path / "lm.arpa"), "--alpha", "2", "--beta", "1", "--beam-width", "8",
            "--token-min-logp", "-8"]
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "-d", str(manifest), "-m", str(tiny_ctc), "-q", *beam,
                                 "-o", str(tmp_path / "beam")])
    assert result.exit_code == 0, result.output
    assert "beam 8 (token_min_logp -8), LM " in result.stdout
    summary = json.loads((tmp_path / "beam" / "summary.json").read_text())
    assert summary["decoder"].startswith("beam 8 (token_min_logp -8), LM ") and "alpha 2, beta 1" in summary["decoder"]
    hyps = [r["hypothesis"] for r in read_jsonl(tmp_path / "beam" / "utterances.jsonl")]
    paths = [line.split("\t")[1] for line in manifest.read_text().splitlines()[1:]]
    printed = runner.invoke(cli, ["transcribe", *paths, "-m", str(tiny_ctc), "-q", *beam])
    assert printed.exit_code == 0, printed.output
    assert hyps == [normalize_text(line.split("\t", 1)[1]) for line in printed.stdout.splitlines()]
    greedy = runner.invoke(cli, ["eval", "-d", str(manifest), "-m", str(tiny_ctc), "-q", "-o", str(tmp_path / "greedy")])
    assert greedy.exit_code == 0 and "decoder" in greedy.stdout, greedy.output
    greedy_hyps = [r["hypothesis"] for r in read_jsonl(tmp_path / "greedy" / "utterances.jsonl")]
    assert json.loads((tmp_path / "greedy" / "summary.json").read_text())["decoder"] == "greedy"
    assert greedy_hyps != hyps  # the LM (alpha 2) moved the random model's output


def test_cli_eval_help():
    result = CliRunner().invoke(cli, ["eval", "--help"])
    assert result.exit_code == 0
    assert "Measure the WER and CER" in result.output and "w2v eval --dataset librispeech_dummy" in result.output
    for flag in ("--dataset", "--model", "--output-dir", "--audio-column", "--text-column", "--max-items",
                 "--batch-size", "--device", "--dtype", "--config", "--set"):
        assert flag in result.output


def test_paired_bootstrap_comparison_of_two_runs(tmp_path):
    """compare(): the exact WER difference; an interval around it that is [0, 0] for equal
    runs, excludes 0 for a consistent change and straddles 0 for a one-utterance change."""
    from w2v_cli.evaluate import compare, read_scores, score_utterance

    refs = [f"the cat sat on mat number {i}" for i in range(40)]  # 7 words each
    a = [score_utterance(f"u{i}", r, r) for i, r in enumerate(refs)]
    worse = [score_utterance(f"u{i}", r, r.replace("cat", "hat")) for i, r in enumerate(refs)]
    one_off = [score_utterance(f"u{i}", r, r.replace("cat", "hat") if i == 3 else r) for i, r in enumerate(refs)]

    same = compare(a, a)
    assert (same.difference, same.low, same.high, same.changed) == (0.0, 0.0, 0.0, 0)
    consistent = compare(a, list(reversed(worse)))  # matched by id, not by position
    assert consistent.difference == pytest.approx(1 / 7) and consistent.low > 0 and consistent.changed == 40
    single = compare(a, one_off)
    assert single.difference == pytest.approx(1 / 280) and single.low == 0.0 < single.high

    # read back from what `w2v eval --output-dir` writes
    for name, scores in (("a", a), ("b", one_off)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "utterances.jsonl").write_text(
            "".join(json.dumps(s.__dict__) + "\n" for s in scores))
    assert compare(read_scores(tmp_path / "a"), read_scores(tmp_path / "b")).difference == single.difference
    with pytest.raises(DataError, match="same utterances"):
        compare(a, a[:-1])
    with pytest.raises(DataError, match="no such file"):
        read_scores(tmp_path / "missing")
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(DataError, match="line 1"):
        read_scores(tmp_path / "bad.jsonl")


def test_trn_ids_lose_what_sclite_cannot_read():
    from w2v_cli.evaluate import score_utterance, trn

    scores = [score_utterance("spk 1 (take 2)", "hello world", "hello word"), score_utterance("b", "yes", "")]
    assert trn(scores, "reference") == "hello world (spk_1_take_2_)\nyes (b)\n"
    assert trn(scores, "hypothesis") == "hello word (spk_1_take_2_)\n (b)\n"


@pytest.mark.skipif(shutil.which("sctk") is None, reason="SCTK's sclite not installed (apt install sctk)")
def test_sclite_recounts_the_errors_of_the_trn_files(tiny_ctc, manifest, tmp_path):
    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    result = evaluate(loaded, load_dataset(str(manifest)), quiet_config(), tmp_path)
    out = subprocess.run(["sctk", "sclite", "-r", str(tmp_path / "ref.trn"), "trn", "-h", str(tmp_path / "hyp.trn"),
                          "trn", "-i", "rm", "-o", "sum", "stdout"], capture_output=True, text=True, check=True).stdout
    # | Sum/Avg|  snt  words | Corr Sub Del Ins Err S.Err |, in percent of the reference words
    numbers = [float(v) for group in re.search(r"Sum/Avg\|(.*)\|(.*)\|", out).groups() for v in group.split()]
    words = sum(len(s.reference.split()) for s in result.scores)
    assert numbers[:2] == [len(result.scores), words]
    assert numbers[6] == pytest.approx(100 * result.wer, abs=0.05)
