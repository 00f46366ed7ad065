"""Word and character times from CTC frames, pause-split segments and subtitle cues.

Frame ``i`` of a wav2vec2 model starts at ``frame_samples[i] / sample_rate`` and lasts one
frame period, ``prod(conv_stride) / sample_rate`` (320 / 16000 = 20 ms for base and large
models). ``Transcription.frame_samples`` holds those starts exactly, across chunk boundaries
(see ``inference.py``); without it frame ``i`` starts at ``i`` periods.

A character spans the frames the CTC path spends on it; a word runs from its first
character's first frame to its last character's last frame. CTC emissions are spiky: a
character often takes one or two frames, so word ends come early and gaps between words
look longer than the silences are. A span's confidence is the mean, over its frames, of
the probability of the path's token at each frame (for a greedy path that is the largest
softmax probability, blanks inside a word included).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PAUSE_S = 0.5  # a gap between words at least this long starts a new segment
MAX_SEGMENT_S = 30.0  # a segment with no such pause is cut before it grows longer than this


@dataclass
class FrameClock:
    """Where each logits frame of a recording lies in time."""

    sample_rate: int  # Hz
    samples_per_frame: int  # prod(conv_stride): 320 for base models, 64 for the tiny test model
    frame_samples: np.ndarray | None = None  # (frames,) absolute start sample of each frame

    @property
    def period_s(self) -> float:
        return self.samples_per_frame / self.sample_rate

    def start(self, frame: int) -> float:
        """Start time of `frame`, seconds."""
        if self.frame_samples is None:
            return frame * self.period_s
        return float(self.frame_samples[frame]) / self.sample_rate

    def end(self, last_frame: int) -> float:
        """End time of `last_frame` (inclusive), seconds."""
        return self.start(last_frame) + self.period_s


def model_clock(loaded: Any, frame_samples: np.ndarray | None = None) -> FrameClock:
    """The FrameClock of a LoadedModel's CTC frames."""
    ratio = int(np.prod(loaded.model.config.conv_stride))
    return FrameClock(loaded.sample_rate, ratio, frame_samples)


@dataclass
class CharTime:
    char: str
    start: float  # seconds
    end: float  # seconds
    confidence: float | None = None  # mean path-token probability over the char's frames


@dataclass
class WordTime:
    word: str
    start: float  # seconds
    end: float  # seconds
    confidence: float | None = None  # mean path-token probability over the word's frames
    chars: list[CharTime] = field(default_factory=list)


def span_confidence(frame_probs: np.ndarray | None, first: int, end: int) -> float | None:
    """Mean of `frame_probs[first:end]` (probability of the path's token per frame)."""
    if frame_probs is None or end <= first:
        return None
    return float(frame_probs[first:end].mean())


def words_from_char_spans(
    chars: list[tuple[str, int, int]], clock: FrameClock, frame_probs: np.ndarray | None = None,
    delimiter: str = " ",
) -> list[WordTime]:
    """Group (char, first frame, end frame exclusive) spans into words at `delimiter` chars."""
    words: list[WordTime] = []
    current: list[tuple[str, int, int]] = []

    def close() -> None:
        if not current:
            return
        first, end = current[0][1], current[-1][2]
        char_times = [CharTime(c, clock.start(s), clock.end(e - 1), span_confidence(frame_probs, s, e))
                      for c, s, e in current]
        words.append(WordTime("".join(c for c, _, _ in current), clock.start(first), clock.end(end - 1),
                              span_confidence(frame_probs, first, end), char_times))
        current.clear()

    for span in chars:
        if span[0] == delimiter:
            close()
        else:
            current.append(span)
    close()
    return words


def greedy_words(
    frame_ids: np.ndarray, tokenizer: Any, clock: FrameClock, log_probs: np.ndarray | None = None
) -> list[WordTime]:
    """Word and char times of the greedy CTC path `frame_ids` (frames,).

    The spans are the tokenizer's own (``decode(..., output_char_offsets=True)``, what the
    transformers pipeline's ``return_timestamps`` uses), so the words are exactly those of
    the greedy transcript. `log_probs` (frames, vocab) adds confidences.
    """
    if len(frame_ids) == 0:
        return []
    decoded = tokenizer.decode(frame_ids.tolist(), output_char_offsets=True)
    spans = [(o["char"], int(o["start_offset"]), int(o["end_offset"])) for o in decoded.char_offsets]
    frame_probs = None if log_probs is None else np.exp(log_probs.max(-1))
    return words_from_char_spans(spans, clock, frame_probs)


def frame_span_words(
    spans: list[tuple[str, int, int]], clock: FrameClock, log_probs: np.ndarray | None = None
) -> list[WordTime]:
    """Words from (word, first frame, end frame exclusive) spans, e.g. a beam decoder's;
    confidence is the mean largest probability over the span (no char times)."""
    frame_probs = None if log_probs is None else np.exp(log_probs.max(-1))
    return [WordTime(w, clock.start(s), clock.end(max(s, e - 1)), span_confidence(frame_probs, s, max(e, s + 1)))
            for w, s, e in spans]


# -- segments -------------------------------------------------------------------------------


def segment_words(
    words: list[WordTime], pause_s: float = PAUSE_S, max_segment_s: float = MAX_SEGMENT_S
) -> list[dict[str, Any]]:
    """Split words into segments at pauses of at least `pause_s`, and before a segment
    would grow past `max_segment_s`. Returns JSON-ready dicts:
    ``{"id", "start", "end", "text", "words": [{"word", "start", "end", "confidence", "chars"}]}``.
    """
    groups: list[list[WordTime]] = []
    for word in words:
        if (not groups or word.start - groups[-1][-1].end >= pause_s
                or word.end - groups[-1][0].start > max_segment_s):
            groups.append([word])
        else:
            groups[-1].append(word)
    return [{"id": i, "start": _round(g[0].start), "end": _round(g[-1].end),
             "text": " ".join(w.word for w in g), "words": [word_record(w) for w in g]}
            for i, g in enumerate(groups)]


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def word_record(word: WordTime) -> dict[str, Any]:
    record = asdict(word)
    for item in [record, *record["chars"]]:
        item["start"], item["end"] = _round(item["start"]), _round(item["end"])
        item["confidence"] = _round(item["confidence"], 4)
    if not record["chars"]:
        del record["chars"]
    return record


# -- subtitles ------------------------------------------------------------------------------


@dataclass
class SubtitleOptions:
    """How segments become subtitle cues (whisper's --max_line_width and friends)."""

    max_line_width: int | None = None  # characters per line; None = no limit
    max_words_per_line: int | None = None  # words per line; None = no limit
    max_line_count: int = 1  # lines per cue


@dataclass
class Cue:
    start: float  # seconds
    end: float  # seconds
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def subtitle_cues(segments: list[dict[str, Any]], options: SubtitleOptions | None = None) -> list[Cue]:
    """Cues from segment dicts: a cue never spans a segment boundary (a pause); within a
    segment, words fill a line until the next would pass `max_line_width` characters or
    `max_words_per_line` words, and `max_line_count` lines make a cue. A word longer than
    the line width gets a line of its own."""
    options = options or SubtitleOptions()
    cues: list[Cue] = []
    for segment in segments:
        words = segment.get("words") or []
        if not words:  # no word times: the segment is one cue
            if segment.get("text"):
                cues.append(Cue(segment["start"], segment["end"], [segment["text"]]))
            continue
        lines: list[list[dict]] = []
        for word in words:
            line = lines[-1] if lines else None
            if line is not None:
                width = sum(len(w["word"]) for w in line) + len(line) + len(word["word"])
                fits = ((options.max_line_width is None or width <= options.max_line_width)
                        and (options.max_words_per_line is None or len(line) < options.max_words_per_line))
                if fits:
                    line.append(word)
                    continue
            lines.append([word])
        count = max(1, options.max_line_count)
        for i in range(0, len(lines), count):
            group = lines[i:i + count]
            cues.append(Cue(group[0][0]["start"], group[-1][-1]["end"],
                            [" ".join(w["word"] for w in line) for line in group]))
    return cues


def format_timestamp(seconds: float, decimal_marker: str = ".") -> str:
    """HH:MM:SS.mmm (SRT wants decimal_marker=',')."""
    assert seconds >= 0, "non-negative timestamp expected"
    ms = int(round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"
