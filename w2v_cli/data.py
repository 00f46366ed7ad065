"""Data sources shared by `w2v eval` and `w2v finetune`.

A dataset spec (``--dataset SPEC``, ``data.train``, ``data.eval``) names one of:

- a built-in name: ``librispeech_dummy`` (the hub dataset
  hf-internal-testing/librispeech_asr_dummy, config ``clean``, split ``validation``, 73
  utterances);
- ``hf:<repo>[:<config>][:<split>]``: a hub dataset, or a local folder written by
  ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` or holding files that
  ``datasets.load_dataset`` reads (parquet, CSV, JSON); audio and text columns are guessed
  or named with ``data.audio_column`` / ``data.text_column``;
- a manifest file: TSV, CSV or JSONL with a path column (relative to the manifest) and a
  text column, an optional id column;
- a folder: LibriSpeech layout (``*.trans.txt`` beside the ``.flac`` files), TIMIT's LDC
  layout (``TRAIN|TEST/DR*/<speaker>/<utt>.WAV`` in NIST SPHERE with ``.TXT``, ``.WRD`` and
  ``.PHN``, names in either case), or audio files with same-name ``.txt`` transcripts.

``load_dataset`` turns a spec into a ``Dataset``: a list of ``Utterance``s plus the items
skipped while reading the source, each with its reason. Audio is never decoded here, only
headers are read; an item whose audio is missing or unreadable, or whose transcript is
empty, is skipped and named, and a source with no usable item at all is an error.

Hub datasets are looked up in the local cache first (as ``HF_HUB_OFFLINE=1`` would), and an
uncached one is only downloaded when the hub answers within a few seconds, so a machine
without network fails fast instead of spending 20+ s in retries.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AUDIO_EXTENSIONS, BLOCK_S, SAMPLE_RATE, _to_mono, audio_info, load_audio, stream_audio
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
    phones: list[str] | None = None  # phone labels as in the source (TIMIT .PHN: the 61-phone set)

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


@dataclass
class HubSpec:
    """A `datasets` dataset: a hub repo id or a local folder, and which part of it to read."""

    repo: str
    config: str | None = None
    split: str | None = None  # None = the only split, else test, then validation
    audio_column: str = ""  # empty = guess
    text_column: str = ""  # empty = guess


# Named datasets; others of the same kind are one line each.
NAMED_DATASETS: dict[str, HubSpec] = {
    "librispeech_dummy": HubSpec("hf-internal-testing/librispeech_asr_dummy", "clean", "validation", "audio", "text"),
}

PATH_COLUMNS = ("path", "audio", "audio_path", "file", "filename", "wav", "audio_filepath")
TEXT_COLUMNS = ("text", "transcript", "transcription", "sentence", "normalized_text", "label")
ID_COLUMNS = ("id", "utt_id", "utterance_id", "key", "name")
# Splits tried, in order, when a spec names none and the dataset has several.
DEFAULT_SPLITS = ("test", "validation", "valid", "dev", "eval")
_SPLIT_NAME = re.compile(r"^(train|validation|valid|dev|test|eval)([.\[_-].*)?$")

SPEC_HELP = (
    "a manifest (.tsv/.csv/.jsonl with path and text columns), a folder (LibriSpeech "
    "*.trans.txt, TIMIT .WAV/.TXT/.PHN, or audio with same-name .txt), "
    f"hf:<repo>[:<config>][:<split>], or a name ({', '.join(NAMED_DATASETS)})"
)


# -- entry point --------------------------------------------------------------------------


def load_dataset(spec: str, options: DataConfig | None = None) -> Dataset:
    """Read the dataset named by `spec`; see the module docstring for what a spec can be."""
    options = options or DataConfig()
    spec = spec.strip()
    if not spec:
        raise DataError(f"no dataset given; pass --dataset with {SPEC_HELP}")
    if spec in NAMED_DATASETS:
        named = NAMED_DATASETS[spec]
        hub = HubSpec(named.repo, named.config, named.split,
                      options.audio_column or named.audio_column, options.text_column or named.text_column)
        dataset = read_hf(hub, spec)
    elif spec.startswith("hf:"):
        dataset = read_hf(parse_hf_spec(spec[3:], options), spec)
    else:
        path = Path(spec).expanduser()
        if path.is_file():
            dataset = read_manifest(path, options)
        elif path.is_dir():
            dataset = read_folder(path, options)
        else:
            raise DataError(f"dataset {spec!r} not found: no such file or folder, and not a known name; "
                            f"pass {SPEC_HELP}")
    return finish(dataset, options)


def finish(dataset: Dataset, options: DataConfig) -> Dataset:
    """Skip duplicate ids, empty transcripts and audio whose header cannot be read; fill
    durations from headers; apply the duration filters and max_items. A dataset left with
    no utterance is an error naming it."""
    kept: list[Utterance] = []
    seen: set[str] = set()
    for utt in dataset.utterances:
        if utt.id in seen:
            dataset.skipped.append((utt.id, "duplicate id"))
            continue
        seen.add(utt.id)
        if not utt.text.strip():
            dataset.skipped.append((utt.id, "empty transcript"))
            continue
        if utt.duration_s is None and utt.path is not None:
            try:
                utt.duration_s = audio_info(utt.path).duration_s or None
            except AudioError as e:
                dataset.skipped.append((utt.id, str(e)))
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
        more = f" and {len(dataset.skipped) - 5} more" if len(dataset.skipped) > 5 else ""
        raise DataError(f"dataset {dataset.name}: no usable utterances"
                        + (f" ({reasons}{more})" if reasons else ""))
    if options.on_bad_item == "stop" and dataset.skipped:
        uid, reason = dataset.skipped[0]
        raise DataError(f"dataset {dataset.name}: {len(dataset.skipped)} bad items, first {uid}: {reason}; "
                        f"fix them or set data.on_bad_item=skip")
    return dataset


# -- manifests ----------------------------------------------------------------------------


def _pick(columns: list[str], wanted: str, candidates: tuple[str, ...], what: str, source: object) -> str | None:
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
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark that would otherwise
        # become part of the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as f:
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
                # TSV has no quoting: a transcript that starts with '"' is text, and must not
                # swallow the rows after it as one quoted field.
                quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
                reader = csv.DictReader(f, delimiter=delimiter, quoting=quoting)
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
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    columns = list(rows[0].keys())
    path_col = _pick(columns, options.audio_column, PATH_COLUMNS, "audio path", path)
    text_col = _pick(columns, options.text_column, TEXT_COLUMNS, "transcript", path)
    id_col = _pick(columns, "", ID_COLUMNS, "id", path)
    if path_col is None or text_col is None:
        missing = " and ".join(w for w, c in (("an audio path column", path_col), ("a text column", text_col)) if c is None)
        raise DataError(
            f"{path}: the manifest lacks {missing}; columns are {', '.join(columns)} "
            f"(expected e.g. 'path' and 'text', or name them with --audio-column / --text-column)"
        )
    utterances: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    stems: set[str] = set()
    for n, row in enumerate(rows):
        audio = str(row.get(path_col) or "").strip()
        uid = str(row.get(id_col) or "").strip() if id_col else ""
        if not uid and audio:
            # Without an id column the file's stem names it, or its path when two files
            # in different folders share a stem (x/1.wav, y/1.wav).
            uid = Path(audio).stem if Path(audio).stem not in stems else str(Path(audio).with_suffix(""))
            stems.add(Path(audio).stem)
        uid = uid or f"row{n + 1}"
        raw_text = row.get(text_col)
        if raw_text is not None and not isinstance(raw_text, str):
            skipped.append((uid, f"the transcript is a {type(raw_text).__name__}, not a string"))
            continue
        text = raw_text or ""
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


# -- folders ------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """A transcript file's text; TIMIT's and some older corpora's files are not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_folder(root: Path, options: DataConfig) -> Dataset:
    """A folder in LibriSpeech layout, TIMIT's LDC layout, or audio files with same-name
    .txt transcripts -- whichever the files show, in that order. A folder written by
    `datasets` (save_to_disk) is read as hf:<folder>."""
    if any((root / name).is_file() for name in ("dataset_dict.json", "state.json")):
        return read_hf(parse_hf_spec(str(root), options), str(root))
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    except OSError as e:
        raise DataError(f"folder {root} cannot be read ({e.strerror or e}); check its permissions") from None
    transcripts = [p for p in files if p.name.lower().endswith(".trans.txt")]
    if transcripts:
        return read_librispeech(root, transcripts)
    phone_files = [p for p in files if p.suffix.lower() == ".phn"]
    if phone_files:
        return read_timit(root, phone_files)
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not audio:
        raise DataError(f"folder {root} holds no dataset: no *.trans.txt (LibriSpeech), no .PHN files "
                        f"(TIMIT) and no audio files; pass {SPEC_HELP}")
    return read_audio_with_transcripts(root, audio, files)


def read_librispeech(root: Path, transcripts: list[Path]) -> Dataset:
    """LibriSpeech: `<speaker>/<chapter>/<speaker>-<chapter>.trans.txt` holds one
    `<utterance id> <TEXT>` line per `<utterance id>.flac` beside it."""
    utterances: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    for trans in transcripts:
        try:
            lines = _read_text(trans).splitlines()
        except OSError as e:
            skipped.append((trans.name, f"transcript file {trans} cannot be read ({e.strerror or e})"))
            continue
        for line in lines:
            uid, _, text = line.strip().partition(" ")
            if not uid:
                continue
            audio = trans.parent / f"{uid}.flac"
            if not audio.exists():  # converted copies (.wav) are common
                audio = next((a for ext in AUDIO_EXTENSIONS if (a := trans.parent / f"{uid}{ext}").exists()), audio)
            utterances.append(Utterance(uid, text, str(audio)))
    return Dataset(str(root), utterances, skipped)


def read_timit(root: Path, phone_files: list[Path]) -> Dataset:
    """TIMIT (LDC layout): `<split>/DR<n>/<speaker>/<utt>.WAV` (NIST SPHERE) with `.TXT`
    (`<first sample> <last sample> <text>`), `.WRD` and `.PHN` (`<start> <end> <phone>` per
    line) beside it; names in either case. Ids are `<speaker>_<utt>`, as in Kaldi's recipe.

    Every sentence is kept, SA1/SA2 included; point at `TIMIT/TEST` or `TIMIT/TRAIN` for
    one split, and leave the SA sentences out yourself if your benchmark does.
    """
    utterances: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    siblings_of: dict[Path, dict[str, Path]] = {}
    for phn in phone_files:
        folder = phn.parent
        if folder not in siblings_of:
            siblings_of[folder] = {p.name.lower(): p for p in folder.iterdir()}
        siblings = siblings_of[folder]
        stem = phn.stem
        uid = f"{folder.name}_{stem}"
        try:
            phones = [fields[2] for fields in (line.split() for line in _read_text(phn).splitlines()) if len(fields) >= 3]
            text = ""
            if (txt := siblings.get(f"{stem.lower()}.txt")) is not None:
                fields = _read_text(txt).split(maxsplit=2)  # two sample offsets, then the sentence
                text = fields[2].strip() if len(fields) == 3 else ""
            elif (wrd := siblings.get(f"{stem.lower()}.wrd")) is not None:
                text = " ".join(f[2] for f in (line.split() for line in _read_text(wrd).splitlines()) if len(f) >= 3)
        except OSError as e:
            skipped.append((uid, f"label files beside {phn} cannot be read ({e.strerror or e})"))
            continue
        audio = siblings.get(f"{stem.lower()}.wav")
        if audio is None:
            skipped.append((uid, f"audio file not found: no {stem}.WAV beside {phn}"))
            continue
        utterances.append(Utterance(uid, text, str(audio), phones=phones))
    return Dataset(str(root), utterances, skipped)


def read_audio_with_transcripts(root: Path, audio: list[Path], files: list[Path]) -> Dataset:
    """Audio files with a same-name `.txt` transcript beside each; ids are the paths
    relative to the folder, without the extension."""
    texts = {p.with_suffix(""): p for p in files if p.suffix.lower() == ".txt"}
    utterances: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    for path in audio:
        uid = path.relative_to(root).with_suffix("").as_posix()
        txt = texts.get(path.with_suffix(""))
        if txt is None:
            skipped.append((uid, f"no transcript: expected {path.stem}.txt beside {path}"))
            continue
        try:
            text = _read_text(txt)
        except OSError as e:
            skipped.append((uid, f"transcript {txt} cannot be read ({e.strerror or e})"))
            continue
        utterances.append(Utterance(uid, " ".join(text.split()), str(path)))
    return Dataset(str(root), utterances, skipped)


# -- Hugging Face datasets ----------------------------------------------------------------


def parse_hf_spec(text: str, options: DataConfig | None = None) -> HubSpec:
    """`<repo>[:<config>][:<split>]`. With one part after the repo it is the split when
    the repo is a local folder or the part looks like a split name (test, validation,
    train.clean.100, test[:10]), else the config; `repo::split` names a split alone."""
    options = options or DataConfig()
    repo, *rest = re.split(r":(?![^\[]*\])", text)  # not the colon of a slice: test[:10]
    if not repo or len(rest) > 2:
        raise DataError(f"hf:{text}: expected hf:<repo>[:<config>][:<split>], e.g. "
                        f"hf:hf-internal-testing/librispeech_asr_dummy:clean:validation")
    config = split = None
    if len(rest) == 2:
        config, split = rest
    elif len(rest) == 1:
        if Path(repo).expanduser().exists() or _SPLIT_NAME.match(rest[0]):
            split = rest[0]
        else:
            config = rest[0]
    return HubSpec(repo, config or None, split or None, options.audio_column, options.text_column)


def _import_datasets() -> Any:
    import datasets

    if not logger.isEnabledFor(logging.DEBUG):
        # Its progress bars and "using the cached version" notices would drown our stderr.
        datasets.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    return datasets


@contextlib.contextmanager
def _cache_only() -> Iterator[None]:
    """Run `datasets` as under HF_HUB_OFFLINE=1: cached copies only, no network. Both
    libraries read the variable once, at import, so their module flags are what counts."""
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _hub_not_available(label: str, hub: HubSpec, why: str, cache_error: Exception) -> DataError:
    import datasets.config

    where = f"{hub.repo}" + (f", config {hub.config}" if hub.config else "") + (f", split {hub.split}" if hub.split else "")
    detail = "" if isinstance(cache_error, ConnectionError) else f" (cache: {cache_error})"
    return DataError(
        f"dataset '{label}' ({where}) is not available: it is not in the Hugging Face datasets "
        f"cache ({datasets.config.HF_DATASETS_CACHE}){detail}, and {why}. Point --dataset at a "
        f"local copy instead: hf:<folder> for a folder written by save_to_disk or holding its "
        f"parquet files, a manifest (.tsv/.csv/.jsonl), or a LibriSpeech or TIMIT folder; or "
        f"connect to the hub once so it is cached."
    )


def _load_from_hub(hub: HubSpec, label: str) -> Any:
    """datasets.load_dataset for a hub id: the cache first, the hub only when it answers."""
    from .models import HUB_TIMEOUT_S, hub_offline, hub_reachable

    datasets = _import_datasets()
    try:
        with _cache_only():
            return datasets.load_dataset(hub.repo, hub.config, split=hub.split)
    except Exception as e:  # noqa: BLE001 - not cached, or cached without this config/split
        cache_error = e
    if hub_offline():
        raise _hub_not_available(label, hub, "HF_HUB_OFFLINE is set", cache_error)
    if not hub_reachable():
        raise _hub_not_available(label, hub, f"the hub cannot be reached (no answer in {HUB_TIMEOUT_S:.0f} s)",
                                 cache_error)
    logger.info("downloading dataset %s from the hub", hub.repo)
    try:
        return datasets.load_dataset(hub.repo, hub.config, split=hub.split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the message says what
        raise DataError(f"dataset '{label}' ({hub.repo}) could not be loaded from the hub: "
                        f"{type(e).__name__}: {e}") from None


def _open_hf(hub: HubSpec, label: str) -> tuple[Any, Path | None]:
    """The `datasets.Dataset` a HubSpec names, and its local folder (None for the hub)."""
    datasets = _import_datasets()
    local = Path(hub.repo).expanduser()
    if local.exists():
        try:
            if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
                data = datasets.load_from_disk(str(local))
            else:  # parquet, CSV, JSON or audio files that datasets' builders read
                data = datasets.load_dataset(str(local), hub.config,
                                             split=hub.split if hub.split and "[" in hub.split else None)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"dataset {label}: {local} cannot be read by datasets ({type(e).__name__}: {e}); "
                            f"pass a folder written by save_to_disk or one with parquet/CSV/JSON files") from None
    else:
        data = _load_from_hub(hub, label)
    if isinstance(data, dict):  # DatasetDict: pick the split
        splits = list(data)
        split = hub.split
        if split is None:
            if len(splits) == 1:
                split = splits[0]
            else:
                split = next((s for s in DEFAULT_SPLITS if s in splits), None)
                if split is None:
                    raise DataError(f"dataset {label} has splits {', '.join(splits)}; name one, "
                                    f"e.g. hf:{hub.repo}{':' + hub.config if hub.config else ''}:{splits[0]}")
                logger.info("dataset %s: using split '%s' of %s", label, split, ", ".join(splits))
        elif split not in splits:
            raise DataError(f"dataset {label} has no split '{split}'; its splits are {', '.join(splits)}")
        data = data[split]
    return data, (local if local.exists() else None)


def _guess_columns(data: Any, hub: HubSpec, label: str) -> tuple[str, str, str | None]:
    """(audio column, text column, id column or None) of a datasets.Dataset."""
    datasets = _import_datasets()
    features = data.features
    columns = list(features)
    strings = [c for c, f in features.items() if isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")]
    audio_col = _pick(columns, hub.audio_column, (), "audio", label)
    if audio_col is None:
        audio_features = [c for c, f in features.items() if isinstance(f, datasets.Audio)]
        if len(audio_features) > 1:
            raise DataError(f"dataset {label} has several audio columns ({', '.join(audio_features)}); "
                            f"name one with --audio-column")
        audio_col = audio_features[0] if audio_features else _pick(strings, "", PATH_COLUMNS, "audio", label)
    text_col = _pick(columns, hub.text_column, (), "transcript", label) or _pick(strings, "", TEXT_COLUMNS, "text", label)
    if audio_col is None or text_col is None:
        missing = " and ".join(w for w, c in (("an audio column (--audio-column)", audio_col),
                                              ("a text column (--text-column)", text_col)) if c is None)
        raise DataError(f"dataset {label}: cannot tell {missing}; its columns are {', '.join(columns)}")
    id_col = _pick(columns, "", ID_COLUMNS, "id", label)
    return audio_col, text_col, id_col


def decode_audio_bytes(data: bytes, key: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Encoded audio (WAV, FLAC, OGG, MP3 bytes) to float32 mono at `sample_rate`, shape
    (samples,). Used for datasets that store audio bytes; soundfile, not torchcodec, which
    `datasets` 5 would otherwise require."""
    import soundfile as sf
    import soxr

    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(key, f"audio bytes are not readable audio ({e}); supported: WAV, FLAC, OGG, MP3") from None
    mono = _to_mono(samples)
    if len(mono) == 0:
        raise AudioError(key, "has no audio frames (zero-length recording)")
    if not np.isfinite(mono).all():
        raise AudioError(key, "contains NaN or infinite samples; re-export the audio")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _bytes_duration_s(data: bytes, key: str) -> float:
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(key, f"audio bytes are not readable audio ({e}); supported: WAV, FLAC, OGG, MP3") from None
    return float(info.duration)


def read_hf(hub: HubSpec, label: str) -> Dataset:
    """A `datasets` dataset (hub or local). Audio stored as bytes is read back from the
    dataset's memory-mapped table on demand, so it is never held in memory whole."""
    datasets = _import_datasets()
    data, local = _open_hf(hub, label)
    audio_col, text_col, id_col = _guess_columns(data, hub, label)
    if isinstance(data.features[audio_col], datasets.Audio):
        data = data.cast_column(audio_col, datasets.Audio(decode=False))
    logger.debug("dataset %s: %d rows, audio '%s', text '%s', id '%s'", label, len(data), audio_col, text_col, id_col)

    def reader(index: int, key: str) -> Callable[[], np.ndarray]:
        return lambda: decode_audio_bytes(data[index][audio_col]["bytes"], key)

    utterances: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    columns = [c for c in (audio_col, text_col, id_col) if c]
    for index, row in enumerate(data.select_columns(columns)):
        uid = str(row[id_col]) if id_col and row[id_col] not in (None, "") else f"{index:06d}"
        text = str(row[text_col] or "")
        audio = row[audio_col]
        encoded = audio.get("bytes") if isinstance(audio, dict) else None
        path = audio.get("path") if isinstance(audio, dict) else audio
        if encoded:
            try:
                duration = _bytes_duration_s(encoded, uid)
            except AudioError as e:
                skipped.append((uid, e.reason))
                continue
            utterances.append(Utterance(uid, text, read=reader(index, uid), duration_s=duration))
        elif path:
            resolved = Path(path).expanduser()
            if not resolved.is_absolute() and local is not None:
                resolved = local / resolved
            utterances.append(Utterance(uid, text, str(resolved)))
        else:
            skipped.append((uid, "empty audio path: the row holds neither audio bytes nor a path"))
    return Dataset(label, utterances, skipped)
