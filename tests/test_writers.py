import json
import re

import pytest

from w2v_cli.timestamps import SubtitleOptions, WordTime, segment_words
from w2v_cli.writers import ALIGNMENT_WRITERS, WRITERS, get_writers


@pytest.fixture()
def record():
    words = [WordTime("HELLO", 0.5, 0.9, 0.91), WordTime("WORLD", 1.0, 1.42, 0.8),
             WordTime("AGAIN", 3661.25, 3661.5, 0.7)]
    return {"path": "a.wav", "text": "HELLO WORLD AGAIN", "duration_s": 3662.0, "model": "m",
            "segments": segment_words(words)}


SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n(.+)\n")


def parse_srt(text):
    cues = []
    for block in text.split("\n\n"):
        m = SRT_CUE.fullmatch(block if block.endswith("\n") else block + "\n")
        assert m, f"not an SRT cue: {block!r}"
        g = m.groups()
        to_s = lambda h, mi, s, ms: int(h) * 3600 + int(mi) * 60 + int(s) + int(ms) / 1000  # noqa: E731
        cues.append((int(g[0]), to_s(*g[1:5]), to_s(*g[5:9]), g[9]))
    return cues


def test_srt_round_trips_times_and_text(record):
    text = WRITERS["srt"]().format(record)
    assert text.startswith("1\n00:00:00,500 --> 00:00:01,420\nHELLO WORLD\n\n2\n")
    assert parse_srt(text) == [(1, 0.5, 1.42, "HELLO WORLD"), (2, 3661.25, 3661.5, "AGAIN")]


def test_vtt_has_header_and_dot_milliseconds(record):
    text = get_writers("vtt", SubtitleOptions(max_words_per_line=1))[0].format(record)
    assert text.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:00.900\nHELLO\n\n")
    assert "01:01:01.250 --> 01:01:01.500\nAGAIN\n" in text


def test_tsv_segments_in_milliseconds(record):
    assert WRITERS["tsv"]().format(record) == "start\tend\ttext\n500\t1420\tHELLO WORLD\n3661250\t3661500\tAGAIN\n"


def test_json_keeps_the_record_keys_and_adds_segments_with_words(record):
    data = json.loads(WRITERS["json"]().format(record))
    assert {"path", "text", "duration_s", "model", "segments"} <= set(data)
    assert data["segments"][0]["words"][1] == {"word": "WORLD", "start": 1.0, "end": 1.42, "confidence": 0.8}


def test_ctm_has_one_line_per_word_in_seconds(record):
    record = {**record, "path": "/data/my talk.flac"}
    assert WRITERS["ctm"]().format(record) == ("my_talk 1 0.500 0.400 HELLO 0.9100\n"
                                               "my_talk 1 1.000 0.420 WORLD 0.8000\n"
                                               "my_talk 1 3661.250 0.250 AGAIN 0.7000\n")
    assert WRITERS["ctm"]().format({**record, "segments": []}) == ""


def test_all_writes_every_format(tmp_path, record):
    paths = [w.write(record, tmp_path, "a") for w in get_writers("all")]
    names = ["a.ctm", "a.json", "a.srt", "a.tsv", "a.txt", "a.vtt"]
    assert sorted(p.name for p in paths) == names
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def alignment_record():
    chars = lambda word, start: [{"char": c, "start": round(start + 0.1 * i, 3), "end": round(start + 0.1 * i + 0.05, 3),  # noqa: E731
                                  "score": 0.5} for i, c in enumerate(word)]
    return {"path": "a.wav", "text": 'SAY "HI"', "duration_s": 2.0, "model": "m", "words": [
        {"word": "SAY", "start": 0.2, "end": 0.45, "score": 0.9, "chars": chars("SAY", 0.2)},
        {"word": '"HI"', "start": 1.0, "end": 1.35, "score": None, "chars": chars('"HI"', 1.0)}]}


def test_textgrid_tiles_each_tier_over_the_recording():
    text = ALIGNMENT_WRITERS["textgrid"]().format(alignment_record())
    assert text.startswith('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 2\n')
    tiers = text.split("    item [")[1:]
    assert len(tiers) == 2 and 'name = "words"' in tiers[0] and 'name = "chars"' in tiers[1]
    bounds = [(float(a), float(b), t) for a, b, t in re.findall(
        r"xmin = ([\d.]+)\n {12}xmax = ([\d.]+)\n {12}text = \"(.*)\"", tiers[0])]
    assert bounds == [(0, 0.2, ""), (0.2, 0.45, "SAY"), (0.45, 1.0, ""), (1.0, 1.35, '""HI""'), (1.35, 2.0, "")]
    assert "intervals: size = 5" in tiers[0]


def test_alignment_tsv_has_word_and_char_rows():
    rows = ALIGNMENT_WRITERS["tsv"]().format(alignment_record()).splitlines()
    assert rows[0] == "tier\tstart\tend\ttext\tscore"
    assert rows[1:3] == ["words\t200\t450\tSAY\t0.9000", 'words\t1000\t1350\t"HI"\t']
    assert rows[3] == "chars\t200\t250\tS\t0.5000" and len(rows) == 3 + 7


def test_cli_writes_every_format_with_greedy_word_times(tiny_ctc, tmp_path):
    import soundfile as sf
    from click.testing import CliRunner

    from w2v_cli.cli import cli
    from w2v_cli.testing import synth_speechlike

    sf.write(tmp_path / "a.wav", synth_speechlike(1.5, seed=2), 16000)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "-m", str(tiny_ctc), "-q",
                                      "-o", str(out), "-f", "all", "--max-words-per-line", "2"])
    assert result.exit_code == 0, result.output
    plain = CliRunner().invoke(cli, ["transcribe", str(tmp_path / "a.wav"), "-m", str(tiny_ctc), "-q"])
    assert result.stdout == plain.stdout  # times and confidences never change the greedy text
    data = json.loads((out / "a.json").read_text())
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == " ".join(data["text"].split())
    assert all(w["chars"] and 0 < w["confidence"] <= 1 for w in words)
    cues = parse_srt((out / "a.srt").read_text())
    assert [c[0] for c in cues] == list(range(1, len(cues) + 1))
    assert all(len(c[3].split()) <= 2 and c[1] <= c[2] for c in cues)
    assert (out / "a.vtt").read_text().startswith("WEBVTT\n\n")
    assert (out / "a.tsv").read_text().count("\n") == len(data["segments"]) + 1
