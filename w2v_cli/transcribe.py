"""`w2v transcribe` as a library: expand inputs, run the engine, write outputs."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .audio import find_audio_files
from .config import Config
from .inference import Transcription, file_source, transcribe_sources
from .models import LoadedModel
from .writers import get_writers

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


def transcribe_paths(
    loaded: LoadedModel,
    paths: list[Path],
    config: Config,
    output_dir: str | Path | None = None,
    output_format: str = "txt",
) -> Iterator[Transcription]:
    """Transcribe audio files in order; with `output_dir`, write one file per input and
    format as each finishes. Failed inputs come back with `error` set and write nothing."""
    sr = loaded.sample_rate
    sources = [file_source(p, sr, config.audio.block_s) for p in paths]
    stems = dict(zip((s.key for s in sources), output_stems(paths)))
    writers = get_writers(output_format) if output_dir else []
    for result in transcribe_sources(loaded, sources, config.inference):
        if result.error is None and output_dir:
            record = result_record(result, loaded.name)
            for writer in writers:
                writer.write(record, Path(output_dir), stems[result.key])
        yield result
