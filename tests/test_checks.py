import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v_cli.checks import (BASE_CONV_KERNEL, BASE_CONV_STRIDE, CheckReport, Problem, check_dataset,
                            checks_for_model, conv_frames, read_vocab_file)
from w2v_cli.cli import cli
from w2v_cli.config import DataConfig
from w2v_cli.data import Dataset, Utterance, load_dataset
from w2v_cli.errors import DataError
from w2v_cli.models import load_ctc_model
from w2v_cli.testing import synth_speechlike


@pytest.fixture()
def messy(tmp_path):
    """A manifest with one of each problem, and ten clean utterances around them."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = ["id\tpath\ttext"]
    for i in range(10):
        sf.write(audio / f"ok{i}.wav", synth_speechlike(1.0 + 0.05 * i, seed=i), 16000)
        rows.append(f"ok{i}\taudio/ok{i}.wav\tHELLO WORLD")
    sf.write(audio / "long.wav", synth_speechlike(9.0, seed=20), 16000)
    rows.append("long\taudio/long.wav\tA LONG ONE")
    (audio / "broken.wav").write_text("not audio at all")
    rows.append("broken\taudio/broken.wav\tHELLO")
    x = synth_speechlike(0.5)
    x[10] = np.nan
    sf.write(audio / "nan.wav", x, 16000, subtype="FLOAT")
    rows.append("nan\taudio/nan.wav\tHELLO")
    sf.write(audio / "short.wav", synth_speechlike(0.1, seed=3), 16000)
    rows.append("short\taudio/short.wav\tTHIS TRANSCRIPT IS FAR TOO LONG FOR A TENTH OF A SECOND")
    rows.append("oov\taudio/ok1.wav\tHÉLLO 42")  # also the same audio as ok1
    rows.append("empty\taudio/ok2.wav\t ")
    rows.append("ok3\taudio/ok3.wav\tDUPLICATE ID")
    sf.write(audio / "narrow.wav", synth_speechlike(1.0, 8000, seed=4), 8000)
    rows.append("narrow\taudio/narrow.wav\tHELLO")
    sf.write(audio / "six.wav", np.tile(synth_speechlike(1.0, seed=5)[:, None], (1, 6)), 16000)
    rows.append("six\taudio/six.wav\tHELLO")
    sf.write(audio / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    rows.append("silent\taudio/silent.wav\tHELLO")
    rows.append("missing\taudio/missing.wav\tHELLO")
    (tmp_path / "m.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "m.tsv"


LETTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


def kinds(report: CheckReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for p in report.problems:
        found.setdefault(p.id, set()).add(f"{p.severity}:{p.kind}")
    return found


def test_every_problem_is_reported_by_id(messy):
    dataset = load_dataset(str(messy), DataConfig())
    report = check_dataset(dataset, vocab=LETTERS, frames_for=conv_frames(BASE_CONV_KERNEL, BASE_CONV_STRIDE))
    assert kinds(report) == {
        "broken": {"error:unreadable_audio"},
        "nan": {"error:nan_audio"},
        "short": {"error:ctc_too_short", "warning:duration_outlier"},
        "oov": {"error:out_of_vocabulary", "warning:duplicate_audio"},
        "empty": {"error:empty_transcript"},
        "ok3": {"error:duplicate_id"},
        "missing": {"error:missing_audio"},
        "narrow": {"warning:low_sample_rate"},
        "six": {"warning:many_channels"},
        "silent": {"warning:silent_audio"},
        "long": {"warning:duration_outlier"},
    }
    assert report.bad_ids() == {"broken", "nan", "short", "oov", "empty", "ok3", "missing"}
    by_id = {(p.id, p.kind): p.message for p in report.problems}
    assert "'2' '4' 'É'" in by_id["oov", "out_of_vocabulary"]
    assert "same audio as ok1" in by_id["oov", "duplicate_audio"]
    assert "CTC needs" in by_id["short", "ctc_too_short"]
    assert report.stats["sample_rates"] == {"8000": 1, "16000": 16}
    assert report.stats["channels"] == {"1": 16, "6": 1}
    d = report.to_dict()
    assert d["errors"] == 7 and json.loads(json.dumps(d)) == d


def test_files_decoded_in_parallel_give_the_same_report_in_the_same_order(messy):
    dataset = load_dataset(str(messy), DataConfig())
    frames_for = conv_frames(BASE_CONV_KERNEL, BASE_CONV_STRIDE)
    serial = check_dataset(dataset, vocab=LETTERS, frames_for=frames_for, workers=1)
    parallel = check_dataset(dataset, vocab=LETTERS, frames_for=frames_for, workers=4)
    assert parallel.to_dict() == serial.to_dict()
    assert [(p.id, p.kind) for p in parallel.problems] == [(p.id, p.kind) for p in serial.problems]


def test_lower_case_text_against_upper_case_vocab_is_fine(tmp_path):
    sf.write(tmp_path / "a.wav", synth_speechlike(1.0), 16000)
    dataset = Dataset("x", [Utterance("a", "hello world", str(tmp_path / "a.wav"))])
    report = check_dataset(dataset, vocab=LETTERS)
    assert report.problems == [] and report.utterances == 1


def test_in_memory_utterances_and_headers_only(tmp_path):
    clip = synth_speechlike(0.5)
    dataset = Dataset("mem", [Utterance("a", "HI", read=lambda: clip),
                              Utterance("b", "HI", read=lambda: clip)])
    report = check_dataset(dataset)
    assert [(p.id, p.kind) for p in report.problems] == [("b", "duplicate_audio")]
    x = np.zeros(8000, dtype=np.float32)
    x[5] = np.inf
    sf.write(tmp_path / "inf.wav", x, 16000, subtype="FLOAT")
    dataset = Dataset("h", [Utterance("inf", "HI", str(tmp_path / "inf.wav"))])
    assert check_dataset(dataset, decode_audio=False).problems == []  # headers cannot see it
    assert [p.kind for p in check_dataset(dataset).problems] == ["nan_audio"]


def test_repeats_count_toward_ctc_length():
    frames_for = conv_frames(BASE_CONV_KERNEL, BASE_CONV_STRIDE)
    assert [frames_for(n) for n in (0, 399, 400, 719, 720, 16000)] == [0, 0, 1, 1, 2, 49]
    clip = synth_speechlike(720 / 16000)  # 2 frames
    ok = Dataset("x", [Utterance("a", "AB", read=lambda: clip)])
    assert check_dataset(ok, frames_for=frames_for).problems == []
    rep = Dataset("x", [Utterance("a", "AA", read=lambda: clip)])  # needs A, blank, A
    [problem] = check_dataset(rep, frames_for=frames_for).problems
    assert problem.kind == "ctc_too_short" and "needs 3 for 2 labels (1 adjacent repeats)" in problem.message


def test_model_derived_checks_match_the_model(tiny_ctc):
    from w2v_cli.ctc import output_frames

    loaded = load_ctc_model(str(tiny_ctc), device="cpu")
    options = checks_for_model(loaded)
    assert {"A", "Z", "'", " "} <= options["vocab"] and "<pad>" not in options["vocab"]
    assert options["to_labels"]("hello world") == loaded.processor.tokenizer("HELLO WORLD").input_ids
    tiny = loaded.model.config
    frames_for = conv_frames(tiny.conv_kernel, tiny.conv_stride)
    for n in (0, 100, 148, 160, 1000, 16000):
        assert options["frames_for"](n) == frames_for(n) == max(0, output_frames(loaded.model, n))


def test_vocab_files(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps({"<pad>": 0, "|": 1, "A": 2, "B": 3}))
    assert read_vocab_file(tmp_path / "v.json") == {"A", "B", " "}
    (tmp_path / "v.txt").write_text("a\nb\n|\n")
    assert read_vocab_file(tmp_path / "v.txt") == {"a", "b", " "}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        read_vocab_file(tmp_path / "bad.json")
    with pytest.raises(DataError, match="cannot be read"):
        read_vocab_file(tmp_path / "absent.txt")


def test_cli_table_json_and_exit_status(messy, tiny_ctc, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["check-data", str(messy), "-q"])
    assert result.exit_code == 1, result.output
    assert "ctc_too_short" in result.stdout and "result       6 errors (6 utterances)" in result.stdout
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["check-data", str(messy), "--model", str(tiny_ctc), "--json", "-q"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["utterances"] == 17 and {"oov", "broken"} <= {p["id"] for p in report["problems"]}
    (tmp_path / "clean.tsv").write_text("path\ttext\nmessy/x.wav\tHELLO\n".replace("messy/", ""))
    sf.write(tmp_path / "x.wav", synth_speechlike(1.0), 16000)
    (tmp_path / "v.txt").write_text("H\nE\nL\nO\n")
    result = runner.invoke(cli, ["check-data", str(tmp_path / "clean.tsv"), "--vocab", str(tmp_path / "v.txt"), "-q"])
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.stdout
    result = runner.invoke(cli, ["check-data", str(tmp_path / "nope.tsv")])
    assert result.exit_code == 1 and "nope.tsv" in result.output and "Traceback" not in result.output
    assert "Check a dataset" in runner.invoke(cli, ["check-data", "--help"]).output


def test_problem_and_report_interface():
    report = CheckReport("d", 2, [Problem("a", "error", "k", "m"), Problem("b", "warning", "k", "m")], {})
    assert report.errors() == [report.problems[0]] and report.bad_ids() == {"a"}


def test_progress_bar_on_a_redirected_stderr_updates_rarely(capsys):
    from w2v_cli.progress import NON_TTY_INTERVAL_S, progress_bar

    bar = progress_bar(range(3), desc="checking")
    assert bar.mininterval == NON_TTY_INTERVAL_S  # pytest's captured stderr is not a terminal
    assert list(bar) == [0, 1, 2]
    assert "checking" in capsys.readouterr().err
