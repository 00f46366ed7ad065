"""Progress bars on stderr, one way for every command."""

from __future__ import annotations

import sys
from typing import Any

NON_TTY_INTERVAL_S = 30.0  # redirected stderr (a log file): one update every 30 s, not ten a second


def progress_bar(iterable: Any = None, **options: Any) -> Any:
    """A tqdm bar on stderr; on a redirected stderr it updates every NON_TTY_INTERVAL_S seconds,
    so a training log keeps a few lines of progress instead of thousands of redraws."""
    from tqdm import tqdm

    if not _is_terminal(sys.stderr):
        options.setdefault("mininterval", NON_TTY_INTERVAL_S)
        options.setdefault("maxinterval", NON_TTY_INTERVAL_S)  # tqdm's monitor would redraw every 10 s
    return tqdm(iterable, file=sys.stderr, **options)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False
