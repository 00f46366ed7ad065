"""Give the C heap's free pages back to the OS while a long recording is transcribed.

Every model call allocates and frees activations of a few to tens of MB. glibc's malloc
keeps freed memory in its arenas (one per worker thread; its mmap threshold rises to the
size of the first large block freed, up to 32 MB, so these buffers come from the arenas,
not from mmap), and the free space between live blocks stays resident: measured on a
one-hour recording in fp32 (wav2vec2-base, two workers), memory in use by the allocator
stayed at 250-310 MB while the free memory it held grew from ~110 MB after 15 s to
~330 MB after 7 minutes, and the process's peak RSS with it. ``malloc_trim(0)`` hands
every whole free page of every arena back (``madvise(MADV_DONTNEED)``), so what stays
resident is what is in use.

Elsewhere (macOS, musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time


@functools.cache
def _malloc_trim():  # -> ctypes function | None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def available() -> bool:
    return _malloc_trim() is not None


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` at most once per `every_s` seconds of wall time.

    One call takes ~20 ms with wav2vec2-base's arenas (129 calls in 2.8 s over a one-hour
    recording), and the pages it hands back are faulted in again when the allocator reuses
    them, so it runs after a model call's results are taken but not more often than this:
    on a long recording in fp32 on 2 cores a batch finishes every ~3.5 s, so that is after
    every batch. On many short files it costs some model time -- the 79 shared recordings in
    bf16 (2 workers, three alternating in-process runs each, 2026-12-04): 25.6 s on average
    trimming every 2 s, 24.8 s every 10 s, 24.0 s never, within a run-to-run spread of +-1 s
    -- but trimming every 30 s instead raised that run's peak RSS from 1.27 to 1.57 GB
    (whole `w2v transcribe` processes), so 2 s stays.
    """

    def __init__(self, every_s: float = 2.0):
        self.every_s = every_s
        self.trim = _malloc_trim()
        self.last = time.perf_counter()
        self.calls = 0
        self.seconds = 0.0  # spent in malloc_trim, for --debug

    def maybe_trim(self) -> bool:
        if self.trim is None:
            return False
        now = time.perf_counter()
        if now - self.last < self.every_s:
            return False
        self.trim(0)
        self.last = time.perf_counter()
        self.seconds += self.last - now
        self.calls += 1
        return True
