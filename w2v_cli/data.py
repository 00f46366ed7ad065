"""Data sources shared by `w2v eval` and `w2v finetune`.

A dataset spec (``--dataset SPEC``, ``data.train``, ``data.eval``) names one of:
- a manifest file: TSV, CSV or JSONL with a path column (relative to the manifest) and a
  text column, an optional id column.

``load_dataset`` turns a spec into a ``Dataset``: a list of ``Utterance``s plus the items
skipped while reading the source, each with its reason.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import BLOCK_S, SAMPLE_RATE, audio_info, load_audio, stream_audio
from .config import DataConfig
from .errors import AudioError, DataError

logger = logging.getLogger("w2v")


@dataclass
class Utterance:
    """One recording and its transcript. Audio is read lazily, from `path` or `read`."""

    id: str
    text: str  # the transcript as the source gives it (not normalised)
    path: str | None = None  # audio file, when the audio is a file
    read: Callable[[], np.ndarray] | None = field(default=None, repr=False)  # (samples,) at SAMPLE_RATE, when not
    duration_s: float | None = None  # when the source knows it without decoding
    phones: list[str] | None = None  # phone labels (TIMIT .PHN), when the source has them

    def load(self, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """float32 mono samples at `sample_rate`, shape (samples,); raises AudioError."""
        if self.path is not None:
            return load_audio(self.path, sample_rate)
        assert self.read is not None, "an Utterance needs a path or a reader"
        samples = self.read()
        if sample_rate != SAMPLE_RATE:
            import soxr

            samples = soxr.resample(samples, SAMPLE_RATE, sample_rate).astype(np.float32)
        return samples

    def blocks(self, sample_rate: int = SAMPLE_RATE, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
        if self.path is not None:
            return stream_audio(self.path, sample_rate, block_s)
        return iter([self.load(sample_rate)])


@dataclass
class Dataset:
    name: str  # the spec it was read from
    utterances: list[Utterance]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)

    @property
    def duration_s(self) -> float:
        return sum(u.duration_s or 0.0 for u in self.utterances)


# -- manifests ----------------------------------------------------------------------------

PATH_COLUMNS = ("path", "audio", "audio_path", "file", "filename", "wav", "audio_filepath")
TEXT_COLUMNS = ("text", "transcript", "transcription", "sentence", "normalized_text", "label")
ID_COLUMNS = ("id", "utt_id", "utterance_id", "key", "name")


def _pick(columns: list[str], wanted: str, candidates: tuple[str, ...], what: str, source: Path) -> str | None:
    if wanted:
        if wanted not in columns:
            raise DataError(f"{source}: no column '{wanted}' for the {what}; columns are {', '.join(columns)}")
        return wanted
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def read_manifest(path: Path, options: DataConfig) -> Dataset:
    """A TSV, CSV or JSONL manifest: one row per utterance, audio paths relative to it."""
    rows: list[dict] = []
    suffix = path.suffix.lower()
    try:
        with open(path, newline="", encoding="utf-8") as f:
            if suffix in (".jsonl", ".json"):
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}, line {n}: not valid JSON ({e.msg}); one JSON object per line") from None
                    if not isinstance(row, dict):
                        raise DataError(f"{path}, line {n}: expected a JSON object, got {type(row).__name__}")
                    rows.append(row)
            else:
                delimiter = "\t" if suffix == ".tsv" else ","
                reader = csv.DictReader(f, delimiter=delimiter)
                for n, row in enumerate(reader, 2):
                    if None in row:
                        raise DataError(
                            f"{path}, line {n}: more fields than the header has; check the "
                            f"{'tabs' if delimiter == chr(9) else 'commas and quoting'} on that line"
                        )
                    rows.append(row)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); save the manifest as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed {suffix[1:].upper()} ({e}); check its quoting") from None
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    columns = list(rows[0].keys())
    path_col = _pick(columns, "", PATH_COLUMNS, "audio path", path)
    text_col = _pick(columns, options.text_column, TEXT_COLUMNS, "transcript", path)
    id_col = _pick(columns, "", ID_COLUMNS, "id", path)
    if path_col is None or text_col is None:
        missing = " and ".join(w for w, c in (("an audio path column", path_col), ("a text column", text_col)) if c is None)
        raise DataError(
            f"{path}: the manifest lacks {missing}; columns are {', '.join(columns)} "
            f"(expected e.g. 'path' and 'text')"
        )
    utterances: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, row in enumerate(rows):
        audio = str(row.get(path_col) or "").strip()
        uid = str(row.get(id_col) or "").strip() if id_col else ""
        uid = uid or (Path(audio).stem if audio else f"row{n + 1}")
        if uid in seen:
            skipped.append((uid, "duplicate id"))
            continue
        seen.add(uid)
        text = str(row.get(text_col) or "")
        if not audio:
            skipped.append((uid, "empty audio path"))
            continue
        duration = row.get("duration_s") or row.get("duration")
        try:
            duration = float(duration) if duration not in (None, "") else None
        except (TypeError, ValueError):
            duration = None
        utterances.append(Utterance(uid, text, str(path.parent / audio), duration_s=duration))
    return Dataset(str(path), utterances, skipped)


def load_dataset(spec: str, options: DataConfig | None = None) -> Dataset:
    """Read the dataset named by `spec`; see the module docstring for what a spec can be."""
    options = options or DataConfig()
    if not spec:
        raise DataError("no dataset given; pass --dataset with a manifest, folder or hf:<repo>")
    path = Path(spec).expanduser()
    if path.is_file():
        dataset = read_manifest(path, options)
    else:
        raise DataError(f"dataset {spec!r} not found: not a manifest file, a folder, or a known name")
    return finish(dataset, options)


def finish(dataset: Dataset, options: DataConfig) -> Dataset:
    """Empty transcripts are skipped; durations filled from headers; duration filters and
    max_items applied."""
    kept: list[Utterance] = []
    for utt in dataset.utterances:
        if not utt.text.strip():
            dataset.skipped.append((utt.id, "empty transcript"))
            continue
        if utt.duration_s is None and utt.path is not None:
            try:
                utt.duration_s = audio_info(utt.path).duration_s or None
            except AudioError as e:
                dataset.skipped.append((utt.id, e.reason))
                continue
        d = utt.duration_s
        if d is not None and options.min_duration_s and d < options.min_duration_s:
            continue
        if d is not None and options.max_duration_s and d > options.max_duration_s:
            continue
        kept.append(utt)
        if options.max_items and len(kept) >= options.max_items:
            break
    dataset.utterances = kept
    if not kept:
        reasons = "; ".join(f"{i}: {r}" for i, r in dataset.skipped[:5])
        raise DataError(f"dataset {dataset.name}: no usable utterances" + (f" ({reasons})" if reasons else ""))
    return dataset
