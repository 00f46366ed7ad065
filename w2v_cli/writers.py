"""Output writers: one small class per format, picked from a registry (as whisper does).

Every file is written to a temporary name in the target folder and renamed into place, so
a killed run never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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

    def format(self, result: dict[str, Any]) -> str:
        return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


WRITERS: dict[str, type[Writer]] = {"txt": TxtWriter, "json": JsonWriter}


def get_writers(output_format: str) -> list[Writer]:
    """Writers for a format name, or for every format when it is 'all'."""
    names = list(WRITERS) if output_format == "all" else [output_format]
    return [WRITERS[name]() for name in names]
