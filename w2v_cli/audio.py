"""Audio loading: any file soundfile reads, to float32 mono at the model's rate.

soundfile (libsndfile) reads WAV, FLAC, OGG, MP3 and NIST SPHERE (TIMIT's ``.WAV``);
soxr resamples. We do not use torchaudio or torchcodec: their PyPI builds are CUDA builds
that, once installed beside the CPU torch, break ``from transformers import
Wav2Vec2Processor``.

Long files are read in blocks (``stream_audio``), so memory stays flat in the file's length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

SAMPLE_RATE = 16000  # Hz, what wav2vec2 models expect
BLOCK_S = 60.0  # seconds per block when streaming a file

# A header's declared data size at or above this is a placeholder, not a length: streaming
# writers put 0x7FFFFFFF or 0xFFFFFFFF there and never come back to fix it.
UNKNOWN_LENGTH = 0x7FFF0000  # bytes

# libsndfile's own diagnosis of a WAV 'data' or AIFF 'SSND' chunk longer than the file:
# "data : 32000 (should be 10666)". It reads what is there and says nothing else.
_DECLARED_SIZE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)

# Extensions searched for when a folder is given (soundfile reads all of these).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".sph", ".aiff", ".aif", ".au")


@dataclass
class AudioInfo:
    path: str
    sample_rate: int  # Hz, as stored
    channels: int
    frames: int  # samples per channel, as stored
    format: str  # e.g. FLAC, WAV, NIST, MP3
    subtype: str  # e.g. PCM_16, ULAW, FLOAT

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_file(path: Path) -> None:
    if not path.exists():
        if path.is_symlink():
            raise AudioError(path, f"is a broken symbolic link (to {os.readlink(path)}); fix or remove the link")
        raise AudioError(path, "file not found; check the path")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")


def _check_complete(f: sf.SoundFile, path: Path) -> None:
    """Refuse a file whose header declares more audio than it holds (a recording cut off
    mid-write): transcribing the part that is there would pass off a fragment as the whole."""
    match = _DECLARED_SIZE.search(f.extra_info)
    if not match or f.frames <= 0:
        return
    declared, actual = int(match[1]), int(match[2])
    if not actual < declared < UNKNOWN_LENGTH:
        return
    declared_frames = int(declared / (actual / f.frames))  # bytes per frame from what is there
    if declared_frames > f.frames:
        raise AudioError(
            path, f"is truncated: its header declares {declared_frames / f.samplerate:.3f} s of audio but "
                  f"the file holds {f.frames / f.samplerate:.3f} s; re-export it, or repair the header "
                  f"if the shorter recording is all there is"
        )


def _open(path: Path) -> sf.SoundFile:
    _check_file(path)
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        reason = str(e).split(": ", 1)[-1] if str(path) in str(e) else str(e)
        raise AudioError(
            path, f"not a readable audio file ({reason}); supported: WAV, FLAC, OGG, MP3, NIST SPHERE"
        ) from None
    except OSError as e:
        raise AudioError(path, f"cannot be opened: {e.strerror or e}") from None
    try:
        _check_complete(f, path)
    except AudioError:
        f.close()
        raise
    return f


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header facts of an audio file, without reading the samples."""
    path = Path(path)
    with _open(path) as f:
        frames = f.frames
        if frames < 0 or frames > 2**62:  # MP3 and some streams report no length
            frames = 0
        return AudioInfo(str(path), f.samplerate, f.channels, frames, f.format, f.subtype)


def _to_mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,), averaging channels."""
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def stream_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    block_s: float = BLOCK_S,
) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks of `path` at `sample_rate`, about `block_s` seconds each.

    Raises AudioError (naming the file) for a missing, empty, undecodable or zero-frame
    file, or one with NaN/inf samples. A file cut short mid-stream raises at that point,
    after the blocks already read.
    """
    path = Path(path)
    f = _open(path)
    with f:
        resampler = None
        if f.samplerate != sample_rate:
            # Streaming resampler: the same output as one-shot soxr.resample, block by block.
            resampler = soxr.ResampleStream(f.samplerate, sample_rate, 1, dtype="float32")
        frames_per_block = max(1, int(block_s * f.samplerate))
        total = 0  # frames read
        produced = 0  # samples yielded, after resampling
        while True:
            try:
                block = f.read(frames_per_block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(path, f"decoding failed after {total} frames ({e}); the file may be truncated or corrupt") from None
            last = len(block) < frames_per_block
            if len(block):
                mono = _to_mono(block)
                if not np.isfinite(mono).all():
                    raise AudioError(path, "contains NaN or infinite samples; re-export the audio")
                total += len(mono)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    produced += len(mono)
                    yield np.ascontiguousarray(mono, dtype=np.float32)
            elif resampler is not None and total:
                tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                if len(tail):
                    produced += len(tail)
                    yield tail
            if last:
                break
        if total == 0:
            raise AudioError(path, "has no audio frames (zero-length recording)")
        if produced == 0:  # e.g. 1 frame at 32 kHz resamples to nothing at 16 kHz
            raise AudioError(path, f"too short: {total} frame(s) at {f.samplerate} Hz give no samples at {sample_rate} Hz")


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    block_s: float = BLOCK_S,
) -> np.ndarray:
    """The whole file as float32 mono at `sample_rate`, shape (samples,)."""
    blocks = list(stream_audio(path, sample_rate, block_s))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """Audio files under a folder, searched recursively, in a stable (sorted) order."""
    root = Path(root)
    # A broken symlink is listed too, so it is reported by name rather than silently missed.
    return sorted(
        p for p in root.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists())) and p.suffix.lower() in AUDIO_EXTENSIONS
    )
