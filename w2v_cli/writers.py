"""Output writers: one small class per format, picked from a registry (as whisper does).

A writer formats a result record: ``path``, ``text``, ``duration_s``, ``model`` and, for the
formats that need times (``needs_timestamps``), ``segments`` as ``timestamps.segment_words``
makes them. Every file is written to a temporary name in the target folder and renamed into
place, so a killed run never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .timestamps import SubtitleOptions, format_timestamp, subtitle_cues


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Writer:
    extension: str = ""
    needs_timestamps: bool = False  # whether the record must carry "segments"

    def __init__(self, subtitles: SubtitleOptions | None = None):
        self.subtitles = subtitles or SubtitleOptions()

    def format(self, result: dict[str, Any]) -> str:
        raise NotImplementedError

    def write(self, result: dict[str, Any], output_dir: Path, stem: str) -> Path:
        path = output_dir / f"{stem}.{self.extension}"
        write_atomic(path, self.format(result))
        return path


class TxtWriter(Writer):
    extension = "txt"

    def format(self, result: dict[str, Any]) -> str:
        return result["text"] + "\n"


class JsonWriter(Writer):
    extension = "json"
    needs_timestamps = True

    def format(self, result: dict[str, Any]) -> str:
        return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


class SrtWriter(Writer):
    extension = "srt"
    needs_timestamps = True

    def format(self, result: dict[str, Any]) -> str:
        blocks = [f"{i}\n{format_timestamp(c.start, ',')} --> {format_timestamp(c.end, ',')}\n{c.text}\n"
                  for i, c in enumerate(subtitle_cues(result.get("segments") or [], self.subtitles), 1)]
        return "\n".join(blocks)


class VttWriter(Writer):
    extension = "vtt"
    needs_timestamps = True

    def format(self, result: dict[str, Any]) -> str:
        blocks = [f"{format_timestamp(c.start)} --> {format_timestamp(c.end)}\n{c.text}\n"
                  for c in subtitle_cues(result.get("segments") or [], self.subtitles)]
        return "\n".join(["WEBVTT\n", *blocks])


class TsvWriter(Writer):
    """Segments as `start<TAB>end<TAB>text`, times in integer milliseconds (as whisper)."""

    extension = "tsv"
    needs_timestamps = True

    def format(self, result: dict[str, Any]) -> str:
        rows = ["start\tend\ttext"]
        for segment in result.get("segments") or []:
            text = " ".join(segment["text"].split())  # no tabs or newlines inside a field
            rows.append(f"{round(1000 * segment['start'])}\t{round(1000 * segment['end'])}\t{text}")
        return "\n".join(rows) + "\n"


class CtmWriter(Writer):
    """Words as NIST CTM, `<recording> 1 <start> <duration> <word> <confidence>` per line in
    seconds: what sclite, Kaldi's and NeMo's scoring read. The recording is the input's file
    name without its extension (whitespace made `_`: CTM fields are space-separated); channel 1."""

    extension = "ctm"
    needs_timestamps = True

    def format(self, result: dict[str, Any]) -> str:
        recording = re.sub(r"\s+", "_", Path(result["path"]).stem) or "audio"
        lines = []
        for segment in result.get("segments") or []:
            for word in segment["words"]:
                line = f"{recording} 1 {word['start']:.3f} {word['end'] - word['start']:.3f} {word['word']}"
                if word.get("confidence") is not None:
                    line += f" {word['confidence']:.4f}"
                lines.append(line)
        return "".join(f"{line}\n" for line in lines)


WRITERS: dict[str, type[Writer]] = {
    "txt": TxtWriter, "json": JsonWriter, "srt": SrtWriter, "vtt": VttWriter, "tsv": TsvWriter,
    "ctm": CtmWriter,
}
OUTPUT_FORMATS = [*WRITERS, "all"]


def get_writers(output_format: str, subtitles: SubtitleOptions | None = None) -> list[Writer]:
    """Writers for a format name, or for every format when it is 'all'."""
    names = list(WRITERS) if output_format == "all" else [output_format]
    return [WRITERS[name](subtitles) for name in names]


# -- forced alignments (`w2v align`): records of align.Alignment.record -------------------


class AlignmentJsonWriter(JsonWriter):
    needs_timestamps = False


class AlignmentTsvWriter(Writer):
    """One row per word, then one per character: tier, start and end (ms), text, score."""

    extension = "tsv"

    def format(self, result: dict[str, Any]) -> str:
        rows = ["tier\tstart\tend\ttext\tscore"]
        for tier in ("words", "chars"):
            for word in result["words"]:
                items = [word] if tier == "words" else word.get("chars", [])
                for item in items:
                    score = "" if item["score"] is None else f"{item['score']:.4f}"
                    rows.append(f"{tier}\t{round(1000 * item['start'])}\t{round(1000 * item['end'])}\t"
                                f"{item.get('word', item.get('char'))}\t{score}")
        return "\n".join(rows) + "\n"


class TextGridWriter(Writer):
    """Praat TextGrid (long text format): interval tiers "words" and "chars", with empty
    intervals filling the gaps so each tier covers the whole recording."""

    extension = "TextGrid"

    def format(self, result: dict[str, Any]) -> str:
        words = [(w["start"], w["end"], w["word"]) for w in result["words"]]
        chars = [(c["start"], c["end"], c["char"]) for w in result["words"] for c in w.get("chars", [])]
        xmax = max([result.get("duration_s") or 0.0] + [end for _, end, _ in words + chars])
        tiers = [("words", words), ("chars", chars)]
        out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
               f"xmax = {xmax:g}", "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
        for n, (name, spans) in enumerate(tiers, 1):
            intervals = _tile(spans, xmax)
            out += [f"    item [{n}]:", '        class = "IntervalTier"', f'        name = "{name}"',
                    "        xmin = 0", f"        xmax = {xmax:g}", f"        intervals: size = {len(intervals)}"]
            for i, (start, end, text) in enumerate(intervals, 1):
                text = text.replace('"', '""')
                out += [f"        intervals [{i}]:", f"            xmin = {start:g}",
                        f"            xmax = {end:g}", f'            text = "{text}"']
        return "\n".join(out) + "\n"


def _tile(spans: list[tuple[float, float, str]], xmax: float) -> list[tuple[float, float, str]]:
    """Spans (sorted, not overlapping) plus empty intervals, covering 0..xmax exactly."""
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for start, end, text in spans:
        start = max(start, t)  # rounding to ms must not make neighbours overlap
        if start > t:
            out.append((t, start, ""))
        if end > start:
            out.append((start, end, text))
            t = end
    if xmax > t:
        out.append((t, xmax, ""))
    return out


ALIGNMENT_WRITERS: dict[str, type[Writer]] = {
    "json": AlignmentJsonWriter, "tsv": AlignmentTsvWriter, "textgrid": TextGridWriter,
}
