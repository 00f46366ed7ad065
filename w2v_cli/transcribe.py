"""`w2v transcribe` as a library: expand inputs, run the engine, write outputs.

Batches resume. Beside the outputs of each input goes a sidecar, ``.<stem>.w2v.json``, written
(atomically) after them: the fingerprint of the model and decoding options, the input's
identity (path, size, mtime) and the sha256 of each output file. A re-run skips an input
only when its sidecar matches and every output it asks for hashes to what the sidecar says.
Any ``kill -9`` leaves either an old, self-consistent pair or a mismatch that is redone: an
output renamed into place after its sidecar no longer matches that sidecar's hash. One
sidecar per input (not one shared log) means no appends to tear, no lock, and nothing
another format's writer has to know about.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .audio import find_audio_files
from .checks import receptive_field
from .config import Config
from .decoding import DecodeOptions, Decoder, resolve
from .distributed import Shard
from .errors import AudioError
from .inference import AudioSource, Transcription, file_source, transcribe_sources
from .models import LoadedModel, dtype_names, local_path, pick_device, pick_dtype
from .timestamps import SubtitleOptions
from .writers import Writer, get_writers, write_atomic

logger = logging.getLogger("w2v")


@dataclass
class InputError:
    """An input argument that names no audio file (reported like a failed file)."""

    key: str
    error: str


def expand_inputs(args: list[str]) -> tuple[list[Path], list[InputError]]:
    """Files, folders (searched recursively for audio) and glob patterns, in order, without
    repeats. Arguments that match nothing come back as InputErrors."""
    paths: list[Path] = []
    errors: list[InputError] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            paths.append(path)

    for arg in args:
        path = Path(arg).expanduser()
        if path.is_dir():
            found = find_audio_files(path)
            if not found:
                errors.append(InputError(arg, "folder holds no audio files (.wav, .flac, .mp3, .ogg, ...)"))
            for p in found:
                add(p)
        elif not path.exists() and glob.has_magic(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                errors.append(InputError(arg, "no files match this pattern"))
            for p in files:
                add(p)
        else:
            add(path)  # a missing file is reported when it is read, in its turn
    return paths, errors


def output_stems(paths: list[Path]) -> list[str]:
    """`<input stem>` per input, made unique when two inputs share a stem."""
    stems: list[str] = []
    used: dict[str, int] = {}
    for path in paths:
        stem = path.stem
        count = used.get(stem, 0)
        used[stem] = count + 1
        stems.append(stem if count == 0 else f"{stem}-{count + 1}")
    return stems


def result_record(t: Transcription, model: str) -> dict:
    return {"path": t.key, "text": t.text, "duration_s": round(t.duration_s, 3), "model": model}


# -- resuming ------------------------------------------------------------------------------

SIDECAR_VERSION = 1
# Files of a model folder whose change changes transcripts (checkpoints/ and logs do not).
MODEL_FILES = ("config.json", "vocab.json", "tokenizer_config.json", "preprocessor_config.json",
               "processor_config.json", "special_tokens_map.json", "added_tokens.json")


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def model_identity(name: str, revision: str | None = None) -> dict:
    """What identifies a model's weights: a local folder's files (size, mtime), or a hub id,
    revision and the commit the local cache holds for it."""
    folder = local_path(name)
    if folder is not None:
        files = sorted(p for p in folder.iterdir() if p.is_file() and (
            p.name in MODEL_FILES or p.suffix in (".safetensors", ".bin")))
        return {"folder": os.path.abspath(folder), "files": {p.name: _stat(p) for p in files}}
    identity = {"hub_id": name, "revision": revision}
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        ref = Path(HF_HUB_CACHE) / f"models--{name.replace('/', '--')}" / "refs" / (revision or "main")
        identity["commit"] = ref.read_text().strip() if ref.is_file() else None
    except (ImportError, OSError):
        identity["commit"] = None
    return identity


def fingerprint(config: Config, decode: DecodeOptions | None = None) -> dict:
    """The model and every option that changes a transcript. batch_size, threads and device
    are left out: batches hold equal-length chunks, so they do not change the text."""
    identity = {
        "model": model_identity(config.model.name, config.model.revision),
        "dtype": resolved_dtype(config),
        "chunk_s": config.inference.chunk_s,
        "stride_s": config.inference.stride_s,
        "sample_rate": config.audio.sample_rate,
    }
    if decode is not None:
        settled = resolve(decode, config.model.name, warn=False)  # what Decoder will do
        if settled.decoder != "greedy":  # greedy sidecars stay as they were
            identity["decode"] = decode_identity(settled)
    return identity


def resolved_dtype(config: Config) -> str:
    """The dtype `auto` stands for on this machine: a sidecar made in bf16 must not be taken
    as done by an fp32 run, nor the reverse, whichever way either was asked for."""
    if config.inference.dtype != "auto":
        return config.inference.dtype
    chosen = pick_dtype("auto", pick_device(config.inference.device))
    return next(name for name, dtype in dtype_names().items() if dtype == chosen)


def decode_identity(decode: DecodeOptions) -> dict:
    """Settled beam options (the model's own LM filled in), with the LM file's size and mtime:
    a rebuilt LM changes transcripts."""
    identity = dataclasses.asdict(decode)
    lm = decode.beam.lm_path
    identity["lm_stat"] = _stat(Path(lm)) if lm and Path(lm).is_file() else None
    return identity


def _input_identity(path: Path) -> dict:
    return {"path": os.path.abspath(path), "stat": _stat(path)}


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def sidecar_path(output_dir: Path, stem: str) -> Path:
    return output_dir / f".{stem}.w2v.json"


def _read_sidecar(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("w2v") == SIDECAR_VERSION else None


def writer_settings(writer: Writer) -> dict:
    """A writer's class and options (e.g. subtitle line widths), as JSON values."""
    options = json.loads(json.dumps(vars(writer), default=lambda o: getattr(o, "__dict__", str(o))))
    return {"writer": type(writer).__name__, **options}


def finished_inputs(paths: list[Path], config: Config, output_dir: str | Path,
                    output_format: str = "txt", writers: list[Writer] | None = None,
                    decode: DecodeOptions | None = None) -> dict[str, dict]:
    """Inputs whose outputs in `output_dir` are complete and were made with this model,
    these options and writers like `writers` (default: ``get_writers(output_format)``; pass
    the ones transcribe_paths will use): {input key: sidecar record}."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return {}
    wanted = fingerprint(config, decode)
    writers = writers if writers is not None else get_writers(output_format)
    expected = {w.extension: writer_settings(w) for w in writers}
    done: dict[str, dict] = {}
    for path, stem in zip(paths, output_stems(paths)):
        record = _read_sidecar(sidecar_path(output_dir, stem))
        if record is None or record.get("fingerprint") != wanted:
            continue
        try:
            if record.get("input") != _input_identity(path):
                continue
        except OSError:
            continue
        outputs = record.get("outputs") or {}
        if all(outputs.get(f"{stem}.{ext}") == {"sha256": _sha256(output_dir / f"{stem}.{ext}"), **settings}
               for ext, settings in expected.items()):
            done[str(path)] = record
    return done


def _mark_done(output_dir: Path, stem: str, path: Path, result: Transcription, wanted: dict,
               written: list[tuple[Path, Writer]]) -> None:
    """Write the sidecar after the outputs; keep what it said about other formats."""
    sidecar = sidecar_path(output_dir, stem)
    record = {"w2v": SIDECAR_VERSION, "fingerprint": wanted, "input": _input_identity(path),
              "text": result.text, "duration_s": round(result.duration_s, 3), "outputs": {}}
    old = _read_sidecar(sidecar)
    if old and old.get("fingerprint") == wanted and old.get("input") == record["input"]:
        record["outputs"].update(old.get("outputs") or {})
    record["outputs"].update({p.name: {"sha256": _sha256(p), **writer_settings(w)} for p, w in written})
    write_atomic(sidecar, json.dumps(record, ensure_ascii=False, indent=1) + "\n")


def _long_enough(source: AudioSource, min_samples: int, sample_rate: int) -> AudioSource:
    """Refuse an input shorter than the model's receptive field by name: the conv layers
    would raise on it (wav2vec2-base needs 400 samples, 25 ms), taking the batch down."""

    def blocks() -> Iterator:
        total = 0
        for block in source.open():
            total += len(block)
            yield block
        if 0 < total < min_samples:
            raise AudioError(source.key, f"too short to transcribe: {1000 * total / sample_rate:.1f} ms, "
                                         f"and the model needs at least {1000 * min_samples / sample_rate:.1f} "
                                         f"ms of audio for one output frame")

    return AudioSource(source.key, blocks, source.duration_s)


def transcribe_paths(
    loaded: LoadedModel | None,
    paths: list[Path],
    config: Config,
    output_dir: str | Path | None = None,
    output_format: str = "txt",
    done: dict[str, dict] | None = None,
    shard: Shard | None = None,
    decode: DecodeOptions | None = None,
    subtitles: SubtitleOptions | None = None,
    records: bool = False,
) -> Iterator[Transcription]:
    """Transcribe audio files in order; with `output_dir`, write one file per input and
    format as each finishes; with `records`, each result carries its output record in
    ``record`` (to print `output_format` on stdout). Failed inputs come back with `error`
    set and write nothing.

    Inputs in `done` (from ``finished_inputs``) are not run again: their earlier transcript
    comes back in its turn. `loaded` may be None when every input is done. `decode` picks
    greedy or beam search; formats that need times (json, srt, vtt, tsv) get word times and
    confidences in the record's ``segments``, shaped by `subtitles` for srt and vtt. With a `shard`
    (several processes), only this process's inputs are done and come back, in order;
    output names are still made unique over all `paths`.
    """
    done = done or {}
    stems = dict(zip((str(p) for p in paths), output_stems(paths)))
    if shard is not None:
        paths = [paths[i] for i in shard.indices(len(paths))]
    todo = [p for p in paths if str(p) not in done]
    results: Iterator[Transcription] = iter(())
    writers = get_writers(output_format, subtitles) if output_dir or records else []
    decoder = None
    if todo:
        assert loaded is not None, "a model is needed for inputs not yet done"
        sr = loaded.sample_rate
        conv = loaded.model.config
        min_samples = receptive_field(tuple(conv.conv_kernel), tuple(conv.conv_stride))
        sources = [_long_enough(file_source(p, sr, config.audio.block_s), min_samples, sr) for p in todo]
        decoder = Decoder(loaded, decode, timestamps=any(w.needs_timestamps for w in writers))
        results = transcribe_sources(loaded, sources, config.inference, decoder.keep_log_probs)
    if loaded is not None and loaded.name != config.model.name:  # the offline fallback model
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=loaded.name, revision=None))
    wanted = fingerprint(config, decode) if output_dir else {}
    for path in paths:
        if str(path) in done:
            record = done[str(path)]
            yield Transcription(str(path), record.get("text", ""), record.get("duration_s", 0.0))
            continue
        result = next(results)
        segments = decoder.finish(result)
        if result.error is None and (output_dir or records):
            record = result_record(result, loaded.name)
            if segments is not None:
                record["segments"] = segments
            if records:
                result.record = record
        if result.error is None and output_dir:
            written = [(writer.write(record, Path(output_dir), stems[result.key]), writer) for writer in writers]
            _mark_done(Path(output_dir), stems[result.key], path, result, wanted, written)
        yield result
