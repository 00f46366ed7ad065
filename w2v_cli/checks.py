"""The data doctor: what is wrong with a dataset, by utterance id, before it costs a run.

``check_dataset`` backs ``w2v check-data SPEC`` and is ``w2v finetune``'s pre-flight (shared
code). It reports:

- errors (the utterance cannot be used as it is): items the reader skipped (duplicate ids,
  empty transcripts, missing or unreadable files), unreadable or corrupt audio, zero-length
  audio, NaN/inf samples, transcripts spanning lines (rows merged by a stray quote),
  characters outside the vocabulary, and utterances with fewer
  model frames than CTC needs for their transcript (labels + adjacent repeats: the loss
  would be infinite);
- warnings (usable, but look): silence, sample rates below the model's, more than two
  channels, duration outliers (beyond median ± k·MAD), and the same audio under two ids.

Sample rates, channel counts and durations are also summed up in ``stats``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import SAMPLE_RATE, AudioInfo, audio_info
from .errors import AudioError, DataError, W2VError
from .progress import progress_bar

if TYPE_CHECKING:  # transcribe.py imports this module; it need not load the data readers
    from .data import Dataset, Utterance

logger = logging.getLogger("w2v")

OUTLIER_MADS = 5.0  # a duration this many (scaled) MADs from the median is an outlier
MAX_CHECK_WORKERS = 4  # threads decoding files: 47k FLACs took 2 min 20 s on one thread, 1 min 20 s on 2 cores
MIN_FOR_OUTLIERS = 8  # fewer utterances than this give no meaningful median/MAD
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation

# wav2vec2-base's conv feature encoder (every public wav2vec2/XLS-R checkpoint shares it):
# 320 input samples per frame and a receptive field of 400 samples (25 ms at 16 kHz).
BASE_CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
BASE_CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)


@dataclass
class Problem:
    id: str  # utterance id
    severity: str  # "error" | "warning"
    kind: str  # e.g. unreadable_audio, empty_transcript, out_of_vocabulary, ctc_too_short
    message: str


@dataclass
class CheckReport:
    dataset: str  # the spec or name it was read from
    utterances: int  # utterances checked (not counting those the reader skipped)
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def bad_ids(self) -> set[str]:
        """Ids with at least one error: leave these out of training."""
        return {p.id for p in self.errors()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "utterances": self.utterances,
            "errors": len(self.errors()),
            "warnings": len(self.warnings()),
            "problems": [asdict(p) for p in self.problems],
            "stats": self.stats,
        }


# -- model-derived checks -------------------------------------------------------------------


def conv_frames(kernels: tuple[int, ...], strides: tuple[int, ...]) -> Callable[[int], int]:
    """Frames a wav2vec2 conv feature encoder emits for `samples` inputs (never negative):
    the same arithmetic as transformers' ``_get_feat_extract_output_lengths``."""

    def frames_for(samples: int) -> int:
        n = samples
        for k, s in zip(kernels, strides):
            if n < k:
                return 0
            n = (n - k) // s + 1
        return n

    return frames_for


def receptive_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Input samples a conv feature encoder needs for one output frame (400 for wav2vec2-base,
    25 ms at 16 kHz); a shorter input makes the conv layers fail instead of giving 0 frames."""
    field_, jump = kernels[0], strides[0]
    for k, s in zip(kernels[1:], strides[1:]):
        field_ += (k - 1) * jump
        jump *= s
    return field_


def vocab_characters(tokens: Any, delimiter: str = "|") -> set[str]:
    """The characters a vocabulary (tokens, or a token -> id dict) can spell; the word
    delimiter stands for a space. Multi-character tokens (<pad>, <unk>) spell nothing."""
    chars = {t for t in tokens if isinstance(t, str) and len(t) == 1}
    if delimiter in chars:  # a literal delimiter in a transcript would split a word
        chars.discard(delimiter)
        chars.add(" ")
    return chars


def read_vocab_file(path: str | Path) -> set[str]:
    """Characters from a vocab.json ({token: id} or [tokens]) or a text file with one
    token per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"vocabulary file {path} cannot be read: {e}") from None
    if path.suffix.lower() == ".json":
        try:
            tokens = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}); expected "
                            f"{{token: id}} as in a model's vocab.json") from None
        if not isinstance(tokens, (dict, list)):
            raise DataError(f"{path}: expected a {{token: id}} object or a list of tokens, "
                            f"got {type(tokens).__name__}")
    else:
        tokens = [line.rstrip("\r\n") for line in text.splitlines()]
        tokens = [" " if t == " " else t.strip() for t in tokens if t]
    chars = vocab_characters(tokens)
    if not chars - {" "}:
        raise DataError(f"{path}: holds no single-character tokens; give one character per "
                        f"line, or a vocab.json")
    return chars


def checks_for_model(loaded: Any) -> dict[str, Any]:
    """``check_dataset`` keyword arguments from a LoadedModel: its characters, its labels
    (as ``w2v ctc-loss`` encodes them) and its frames per input length."""
    from .ctc import encode_transcript, output_frames

    tokenizer = loaded.processor.tokenizer
    model = loaded.model
    return {
        "vocab": vocab_characters(tokenizer.get_vocab(), tokenizer.word_delimiter_token or "|"),
        # unk=True: characters outside the vocabulary are reported by the vocab check.
        "to_labels": lambda text: encode_transcript(tokenizer, text, unk=True)[1],
        "frames_for": lambda samples: max(0, output_frames(model, samples)),
        "sample_rate": loaded.sample_rate,
    }


def adapt_case(text: str, vocab: set[str]) -> str:
    """Upper-case text for an upper-case-only vocabulary and lower-case it for a
    lower-case-only one, as ``ctc.encode_transcript`` does: case is not a transcript error."""
    cased = [ch for ch in vocab if ch.lower() != ch.upper()]
    if cased and all(ch.isupper() for ch in cased):
        return text.upper()
    if cased and all(ch.islower() for ch in cased):
        return text.lower()
    return text


def min_ctc_frames(labels: list) -> int:
    """Frames CTC needs for `labels`: one each, plus a blank between adjacent repeats."""
    from .ctc import min_frames

    return min_frames(list(labels))


# -- the checks -------------------------------------------------------------------------------


def _kind_of(reason: str) -> str:
    """A Problem kind for a reader's skip reason or an AudioError reason."""
    reason = reason.lower()
    for needle, kind in (
        ("duplicate id", "duplicate_id"),
        ("empty transcript", "empty_transcript"),
        ("empty audio path", "missing_audio"),
        ("not found", "missing_audio"),
        ("nan or infinite", "nan_audio"),
        ("no audio frames", "empty_audio"),
        ("0 bytes", "empty_audio"),
    ):
        if needle in reason:
            return kind
    return "unreadable_audio"


@dataclass
class _Measured:
    samples: int  # at the check's sample rate
    peak: float  # max |sample|, 0 for silence; nan when not decoded
    digest: str | None  # content hash, None when not computed


def _measure(utt: Utterance, sample_rate: int, decode_audio: bool, info: AudioInfo | None = None) -> _Measured:
    """Decode (or only read the header of) an utterance's audio; raises AudioError. `info`:
    its header, when already read."""
    if not decode_audio:
        if utt.path is None:
            return _Measured(int(round((utt.duration_s or 0.0) * sample_rate)), float("nan"), None)
        info = info or audio_info(utt.path)  # None: read it here, to raise with the reason
        if info.frames == 0 and info.format not in ("MPEG", "MP3"):
            raise AudioError(utt.path, "has no audio frames (zero-length recording)")
        return _Measured(int(round(info.duration_s * sample_rate)), float("nan"), None)
    digest = hashlib.blake2b(digest_size=16)
    samples = 0
    peak = 0.0
    for block in utt.blocks(sample_rate):  # streamed: a 2-hour file never sits in memory
        samples += len(block)
        if len(block):
            peak = max(peak, float(np.abs(block).max()))
        digest.update(np.ascontiguousarray(block, dtype=np.float32).tobytes())
    if samples == 0:
        raise AudioError(utt.path or utt.id, "has no audio frames (zero-length recording)")
    return _Measured(samples, peak, digest.hexdigest())


def _read(utt: Utterance, sample_rate: int, decode_audio: bool) -> tuple[AudioInfo | None, _Measured | Problem]:
    """An utterance's header (None when there is no file or it cannot be read) and its
    measurement, or the Problem that stopped it; runs in check_dataset's worker threads."""
    info = None
    if utt.path is not None:
        try:
            info = audio_info(utt.path)
        except AudioError:
            pass  # _measure says why, with the decoding reason
    try:
        return info, _measure(utt, sample_rate, decode_audio, info)
    except AudioError as e:
        return info, Problem(utt.id, "error", _kind_of(e.reason), e.reason)
    except (W2VError, OSError, ValueError, RuntimeError) as e:  # a source's own reader
        return info, Problem(utt.id, "error", "unreadable_audio", str(e))


def check_dataset(
    dataset: Dataset,
    vocab: set[str] | None = None,
    to_labels: Callable[[str], list] | None = None,
    frames_for: Callable[[int], int] | None = None,
    sample_rate: int = SAMPLE_RATE,
    decode_audio: bool = True,
    progress: bool = False,
    workers: int | None = None,
) -> CheckReport:
    """Check every utterance of `dataset` (and report what its reader skipped).

    vocab: characters a transcript may use (a space is the word delimiter); None = no check.
    to_labels: text -> label sequence; default one label per character (when frames_for
        is given). frames_for: input samples at `sample_rate` -> model output frames; None =
        no CTC length check. decode_audio=False reads headers only (fast, but NaN samples,
        silence and duplicate audio go unseen). workers: threads decoding audio files; None =
        one per core (at most MAX_CHECK_WORKERS) when every utterance is a file, else one.
    """
    problems: list[Problem] = []
    for uid, reason in dataset.skipped:
        problems.append(Problem(uid, "error", _kind_of(reason), reason))

    if frames_for is not None and to_labels is None:
        def to_labels(text: str) -> list:  # one label per character, the delimiter included
            return list(text)

    rates: Counter = Counter()
    channels: Counter = Counter()
    durations: dict[str, float] = {}
    first_with_digest: dict[str, str] = {}
    items = dataset.utterances
    if workers is None:  # files decode in parallel (libsndfile, soxr and hashing drop the GIL);
        # a source's own reader (hub datasets, archives) may not be thread-safe: one at a time
        workers = min(MAX_CHECK_WORKERS, os.cpu_count() or 1) if all(u.path for u in items) else 1
    pool = ThreadPoolExecutor(max_workers=max(workers, 1))
    # map() yields in the dataset's order, so "same audio as" names the first copy as before
    results = pool.map(lambda u: _read(u, sample_rate, decode_audio), items)
    if progress:
        results = progress_bar(results, total=len(items), desc="checking", unit="utt")
    try:
        for utt, (info, read) in zip(items, results):
            text = " ".join(utt.text.split())
            if not text:
                problems.append(Problem(utt.id, "error", "empty_transcript", "the transcript is empty"))
            elif any(ch in utt.text.strip() for ch in "\n\r\t"):
                # A quote opening a TSV/CSV field swallows the rows after it into this transcript.
                problems.append(Problem(utt.id, "error", "malformed_transcript",
                                        f"the transcript holds a line break or tab ({utt.text.strip()[:60]!r}...): "
                                        f"a stray quote in the manifest merged rows? quote the field or remove the quote"))
            elif vocab is not None:
                text = adapt_case(text, vocab)
                missing = sorted({ch for ch in text if ch not in vocab})
                if missing:
                    shown = " ".join(repr(ch) for ch in missing)
                    problems.append(Problem(utt.id, "error", "out_of_vocabulary",
                                            f"characters outside the vocabulary: {shown}"))

            if utt.path is None:
                rates[sample_rate] += 1
                channels[1] += 1
            elif info is not None:  # an unreadable header is reported below, with the decoding reason
                rates[info.sample_rate] += 1
                channels[info.channels] += 1
                if info.sample_rate < sample_rate:
                    problems.append(Problem(utt.id, "warning", "low_sample_rate",
                                            f"{info.sample_rate} Hz, upsampled to {sample_rate} Hz: "
                                            f"the high band the model expects is missing"))
                if info.channels > 2:
                    problems.append(Problem(utt.id, "warning", "many_channels",
                                            f"{info.channels} channels, mixed down to mono"))

            if isinstance(read, Problem):
                problems.append(read)
                continue
            measured = read
            durations[utt.id] = measured.samples / sample_rate
            if measured.peak == 0.0:
                problems.append(Problem(utt.id, "warning", "silent_audio", "every sample is zero"))
            if measured.digest is not None:
                first = first_with_digest.setdefault(measured.digest, utt.id)
                if first != utt.id:
                    problems.append(Problem(utt.id, "warning", "duplicate_audio", f"same audio as {first}"))

            if frames_for is not None and text:
                try:
                    labels = to_labels(text)
                except W2VError:
                    labels = None  # a vocabulary problem, already reported
                if labels:
                    frames = frames_for(measured.samples)
                    needed = min_ctc_frames(labels)
                    if frames < needed:
                        problems.append(Problem(
                            utt.id, "error", "ctc_too_short",
                            f"{durations[utt.id]:.2f} s gives {frames} frames but CTC needs {needed} "
                            f"for {len(labels)} labels ({needed - len(labels)} adjacent repeats); "
                            f"the loss would be infinite"))
    finally:  # Ctrl-C: no decoding goes on behind the exception
        pool.shutdown(wait=True, cancel_futures=True)

    problems += _duration_outliers(durations)
    order = {uid: n for n, uid in enumerate([u.id for u in dataset.utterances])}
    problems.sort(key=lambda p: (order.get(p.id, -1), p.severity != "error"))
    values = sorted(durations.values())
    stats: dict[str, Any] = {
        "skipped_by_reader": len(dataset.skipped),
        "audio_read": len(durations),
        "duration_s": round(sum(values), 3),
        "min_duration_s": round(values[0], 3) if values else None,
        "median_duration_s": round(statistics.median(values), 3) if values else None,
        "max_duration_s": round(values[-1], 3) if values else None,
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "channels": {str(k): v for k, v in sorted(channels.items())},
        "problem_kinds": dict(sorted(Counter(p.kind for p in problems).items())),
    }
    return CheckReport(dataset.name, len(dataset.utterances), problems, stats)


def _duration_outliers(durations: dict[str, float], k: float = OUTLIER_MADS) -> list[Problem]:
    """Warnings for durations beyond median ± k·MAD (scaled to a standard deviation)."""
    if len(durations) < MIN_FOR_OUTLIERS:
        return []
    values = list(durations.values())
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values) * MAD_TO_SIGMA
    if mad == 0:
        return []
    low, high = median - k * mad, median + k * mad
    return [
        Problem(uid, "warning", "duration_outlier",
                f"{d:.2f} s, outside {max(low, 0):.2f}–{high:.2f} s (median {median:.2f} s ± {k:g} MAD)")
        for uid, d in durations.items()
        if d < low or d > high
    ]


def format_report(report: CheckReport) -> str:
    """A plain-text table of problems and a summary, for stdout."""
    lines: list[str] = []
    if report.problems:
        rows = [("id", "severity", "kind", "message")]
        rows += [(p.id, p.severity, p.kind, p.message) for p in report.problems]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        lines.append("")
    s = report.stats
    lines.append(f"dataset      {report.dataset}")
    lines.append(f"utterances   {report.utterances} checked, {s.get('skipped_by_reader', 0)} skipped by the reader")
    if s.get("audio_read"):
        lines.append(f"duration     {s['duration_s']:.1f} s in all; min {s['min_duration_s']:.2f} s, "
                     f"median {s['median_duration_s']:.2f} s, max {s['max_duration_s']:.2f} s")
    if s.get("sample_rates"):
        lines.append("sample rates " + ", ".join(f"{k} Hz: {v}" for k, v in s["sample_rates"].items()))
        lines.append("channels     " + ", ".join(f"{k}: {v}" for k, v in s["channels"].items()))
    bad = len(report.bad_ids())
    lines.append(f"result       {len(report.errors())} errors ({bad} utterance{'s' * (bad != 1)}), "
                 f"{len(report.warnings())} warnings")
    return "\n".join(lines)
