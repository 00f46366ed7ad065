"""The inference engine behind `w2v transcribe` and `w2v eval`.

Audio is decoded and resampled in a background thread while the model runs, and read in
blocks, so a long recording never sits in memory whole. A recording longer than one chunk
is cut into overlapping chunks exactly as the transformers ASR pipeline does
(``chunk_iter`` + ``rescale_stride``): each chunk carries ``stride_s`` of context on each
side, and the logits frames of that context are dropped before the frames are joined. A
recording shorter than a chunk goes through in one pass, so its transcript is the same as
a single ``model(input_values)``.

Batches only ever hold chunks of the same length: zero-padding changes the logits of
group-norm models such as wav2vec2-base (transformers issue 21534), so a transcript never
depends on what else was in the batch.

On a CPU with several threads and enough inputs, several model calls run at once in worker
threads, each with its share of the threads (``inference.workers``): one-thread GEMMs, layer
norms and attention waste less time waiting on each other than one call split across all
cores (11-13% less model time on 2 cores for the 79 shared recordings). Results are taken
in input order, so the output is the same as one call at a time.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .attention import use_fast_attention
from .audio import BLOCK_S, audio_info, stream_audio
from .config import InferenceConfig
from .errors import AudioError, W2VError
from .feature_encoder import prepare_for_inference
from .heap import HeapTrimmer
from .models import LoadedModel, configure_threads
from .packed_linear import pack_linears
from .positional import use_fast_positional_conv

logger = logging.getLogger("w2v")

LONG_INPUT_S = 60.0  # a single input at least this long gets a progress bar
MAX_AUTO_WORKERS = 4  # inference.workers = 0 never runs more model calls at once than this


@dataclass
class AudioSource:
    """Something to transcribe: a key (path or utterance id) and a way to read it in blocks
    of float32 mono samples at the model's rate."""

    key: str
    open: Callable[[], Iterator[np.ndarray]]
    duration_s: float | None = None  # for the progress bar and Engine.workers_for; None when unknown


def file_source(path: str | Path, sample_rate: int, block_s: float = BLOCK_S) -> AudioSource:
    """An AudioSource for a file; its duration comes from the header (0 when unreadable)."""
    try:
        duration = audio_info(path).duration_s
    except AudioError:
        duration = None  # the error is reported when the file is read
    return AudioSource(str(path), lambda: stream_audio(path, sample_rate, block_s), duration)


def array_source(key: str, samples: np.ndarray, sample_rate: int) -> AudioSource:
    samples = np.asarray(samples, dtype=np.float32)
    return AudioSource(key, lambda: iter([samples]), len(samples) / sample_rate)


@dataclass
class Transcription:
    key: str  # path or utterance id
    text: str = ""
    duration_s: float = 0.0  # seconds of audio read
    error: str | None = None  # why the input failed, None when it did not
    frame_ids: np.ndarray | None = field(default=None, repr=False)  # argmax per kept frame
    # Only with Engine(keep_log_probs=True), for timestamps, confidences and beam search:
    log_probs: np.ndarray | None = field(default=None, repr=False)  # (frames, vocab) float32 log-softmax
    # (frames,) absolute sample index where each kept frame starts. Exact even when chunk or
    # stride lengths are not whole frames, where frame index * frame period drifts per chunk.
    frame_samples: np.ndarray | None = field(default=None, repr=False)
    # The output record (path, text, duration_s, model, and segments when the format has times),
    # when transcribe_paths is asked for it: a format printed on stdout instead of written.
    record: dict | None = field(default=None, repr=False)


@dataclass
class Chunk:
    samples: np.ndarray  # (samples,) float32
    left: int  # samples of left context whose frames are dropped
    right: int  # samples of right context whose frames are dropped
    start: int = 0  # absolute sample index of samples[0] in the recording


def iter_chunks(
    blocks: Iterable[np.ndarray], chunk_len: int, stride_left: int, stride_right: int
) -> Iterator[Chunk]:
    """Cut a stream of sample blocks into the pipeline's overlapping chunks.

    The same chunks as transformers' ``chunk_iter`` over the whole array, but the array is
    never held whole: only one chunk plus one block is buffered.
    """
    step = chunk_len - stride_left - stride_right
    if step <= 0:
        raise W2VError(
            f"chunk of {chunk_len} samples leaves no room after strides of {stride_left}+"
            f"{stride_right}; make chunk_s larger than twice stride_s"
        )
    blocks = iter(blocks)
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # absolute sample index of buffer[0]
    exhausted = False
    start = 0
    while True:
        end = start + chunk_len
        # Read past `end` so we know whether this chunk is the last one.
        pieces = [buffer]
        known = buffer_start + len(buffer)
        while not exhausted and known <= end:
            try:
                block = next(blocks)
            except StopIteration:
                exhausted = True
                break
            pieces.append(block)
            known += len(block)
        if len(pieces) > 1:
            buffer = np.concatenate(pieces)
        chunk = buffer[start - buffer_start : end - buffer_start]
        is_last = exhausted and end >= known
        left = 0 if start == 0 else stride_left
        right = 0 if is_last else stride_right
        if len(chunk) > left:
            yield Chunk(chunk, left, right, start)
        if is_last:
            return
        start += step
        buffer = buffer[start - buffer_start :]
        buffer_start = start


def kept_frames(samples: int, left: int, right: int, inputs_to_logits_ratio: int) -> tuple[int, int]:
    """The logits frames of a chunk to keep, as transformers' ``rescale_stride`` computes
    them: returns (first, end) for ``frames[first:end]``."""
    token_n = int(round(samples / inputs_to_logits_ratio))
    first = int(round(left / samples * token_n))
    last = int(round(right / samples * token_n))
    return first, token_n - last


def collapse_repeats(frame_ids: np.ndarray) -> np.ndarray:
    """Keep the first id of each run of equal ids: (frames,) -> (runs,).

    The tokenizer's CTC decoding merges repeats first too (itertools.groupby over tokens),
    so decoding the runs gives the same text, without a Python step per frame of an hour.
    Blanks stay: dropping them here would join the two A's of "A <pad> A".
    """
    if len(frame_ids) < 2:
        return frame_ids
    keep = np.empty(len(frame_ids), dtype=bool)
    keep[0] = True
    np.not_equal(frame_ids[1:], frame_ids[:-1], out=keep[1:])
    return frame_ids[keep]


def _float32_head(loaded: LoadedModel):  # -> torch.nn.Linear | None
    """A float32 copy of the CTC head of a reduced-precision Wav2Vec2ForCTC, else None.

    Wav2Vec2ForCTC computes ``lm_head(dropout(base_model(x)))``; in eval mode dropout is
    the identity, so base model + this head gives the same logits, without rounding them
    to bf16's 8-bit mantissa (which turns near-ties into ties that argmax breaks by index).
    """
    import copy

    import torch
    from transformers import Wav2Vec2ForCTC

    model = loaded.model
    if loaded.dtype == torch.float32 or type(model) is not Wav2Vec2ForCTC:
        return None
    return copy.deepcopy(model.lm_head).float()


def gpu_kernels(loaded: LoadedModel):  # -> a context manager
    """On a CUDA GPU, attention without cuDNN's kernel (flash, memory-efficient or math);
    nothing elsewhere.

    Measured on an NVIDIA H200 (2026-12-04, torch 2.11 + CUDA 13, transformers 5.17,
    wav2vec2-base with random weights; `w2v transcribe` of the 79 shared recordings, bf16,
    model time of a whole process): 6.13 s as torch chooses (cuDNN's attention, which builds
    a new plan on the CPU for every sequence length it has not seen -- 46 ms for one forward,
    and nearly every recording has its own length), 1.75 s with cuDNN's attention left out,
    5.99 s with all of cuDNN off (its attention runs anyway). float32 never takes the cuDNN
    kernel; its 79-recording run took 2.2 s. Re-run that evening as whole processes through
    scripts/bench_transcribe.py, with this context manager: bf16 3.7-4.0 s, float32 1.9-2.0 s
    (README, "The GPU again"): bf16 still pays something per new length there, not found yet.
    """
    if loaded.device != "cuda":
        return contextlib.nullcontext()
    return _without_cudnn_attention()


# torch's attention-backend switches are global to the process, so `sdpa_kernel` entered and
# left by two threads at once races: the first to leave turns cuDNN's attention back on while
# the other's forward runs. Counted instead: the first forward to enter switches it off, the
# last to leave restores what it was. (`w2v transcribe` on a GPU makes one model call at a
# time; this is for library users calling Engine.forward from several threads.)
_cudnn_sdp_lock = threading.Lock()
_cudnn_sdp_users = 0
_cudnn_sdp_before = True


@contextlib.contextmanager
def _without_cudnn_attention() -> Iterator[None]:
    import torch

    global _cudnn_sdp_users, _cudnn_sdp_before
    with _cudnn_sdp_lock:
        if _cudnn_sdp_users == 0:
            _cudnn_sdp_before = torch.backends.cuda.cudnn_sdp_enabled()
            torch.backends.cuda.enable_cudnn_sdp(False)
        _cudnn_sdp_users += 1
    try:
        yield
    finally:
        with _cudnn_sdp_lock:
            _cudnn_sdp_users -= 1
            if _cudnn_sdp_users == 0:
                torch.backends.cuda.enable_cudnn_sdp(_cudnn_sdp_before)


def normalize(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as Wav2Vec2FeatureExtractor(do_normalize=True) does."""
    return (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)


class Engine:
    """Runs a LoadedModel over AudioSources and decodes greedily."""

    def __init__(self, loaded: LoadedModel, options: InferenceConfig, keep_log_probs: bool = False):
        import torch

        self.loaded = loaded
        self.options = options
        self.keep_log_probs = keep_log_probs  # also return log-probs and frame positions
        self.threads = configure_threads(options.num_threads)
        # On CPU the feature encoder runs as channels-last GEMMs from float32 audio (see
        # feature_encoder.py); elsewhere the input is cast to the model's dtype.
        self.float_input = prepare_for_inference(loaded.model, fast_encoder=loaded.device == "cpu")
        if loaded.device == "cpu":
            pack_linears(loaded.model)  # see packed_linear.py
            use_fast_attention(loaded.model)  # bf16 only; see attention.py
            use_fast_positional_conv(loaded.model)  # bf16 only; see positional.py
        self.head = _float32_head(loaded)
        self.forward_s = 0.0  # wall seconds with the model running, for the benchmark's compute column
        self._busy = 0  # forward() calls running now (worker threads)
        self._busy_since = 0.0
        self._busy_lock = threading.Lock()
        config = loaded.model.config
        self.ratio = int(np.prod(config.conv_stride))  # input samples per logits frame (320)
        sr = loaded.sample_rate
        self.chunk_len = int(round(options.chunk_s * sr))
        self.stride = int(round(options.stride_s * sr))
        self.blank_id = loaded.processor.tokenizer.pad_token_id

    # -- model ---------------------------------------------------------------------------
    def forward(self, batch: list[np.ndarray], log_probs: bool = False):
        """Argmax ids for a batch of equal-length chunks: (batch, frames) int64; with
        `log_probs`, a pair (ids, (batch, frames, vocab) float32 log-softmax)."""
        self._enter()
        try:
            return self._forward(batch, log_probs)
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._busy_lock:
            if self._busy == 0:
                self._busy_since = time.perf_counter()
            self._busy += 1

    def _leave(self) -> None:
        with self._busy_lock:
            self._busy -= 1
            if self._busy == 0:
                self.forward_s += time.perf_counter() - self._busy_since

    def _forward(self, batch: list[np.ndarray], log_probs: bool):
        import torch

        x = np.stack([normalize(s) if self.loaded.do_normalize else s for s in batch])
        with torch.inference_mode(), gpu_kernels(self.loaded):
            dtype = torch.float32 if self.float_input else self.loaded.dtype
            inputs = torch.from_numpy(x).to(self.loaded.device, dtype)
            if self.head is None:
                logits = self.loaded.model(inputs).logits  # (batch, frames, vocab)
            else:  # a bf16/fp16 body with a float32 head: no ties made by rounding logits
                hidden = self.loaded.model.base_model(inputs).last_hidden_state
                logits = self.head(hidden.float())
            ids = logits.argmax(-1).cpu().numpy()
            log_probs_out = torch.log_softmax(logits.float(), -1).cpu().numpy() if log_probs else None
        return (ids, log_probs_out) if log_probs else ids

    def decode(self, frame_ids: np.ndarray) -> str:
        # skip_special_tokens stays False: skipping drops </s> before repeats are merged,
        # which is not what processor.batch_decode(logits.argmax(-1)) gives.
        return self.loaded.processor.tokenizer.decode(collapse_repeats(frame_ids).tolist())

    # -- running -------------------------------------------------------------------------
    def _events(self, sources: list[AudioSource]) -> Iterator[tuple]:
        """Read and chunk sources in a background thread; yields
        ('chunk', index, Chunk), ('done', index, samples) or ('error', index, message)."""
        events: queue.Queue = queue.Queue(maxsize=max(4, 2 * self.options.batch_size))
        stop = threading.Event()

        def produce() -> None:
            try:
                for index, source in enumerate(sources):
                    if stop.is_set():
                        return
                    total = 0

                    def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
                        nonlocal total
                        for block in blocks:
                            total += len(block)
                            yield block

                    try:
                        for chunk in iter_chunks(counted(source.open()), self.chunk_len, self.stride, self.stride):
                            events.put(("chunk", index, chunk))
                            if stop.is_set():
                                return
                        events.put(("done", index, total))
                    except AudioError as e:
                        events.put(("error", index, e.reason))
                    except W2VError as e:
                        events.put(("error", index, str(e)))
                    except OSError as e:  # e.g. the file vanished or a disk error mid-read
                        events.put(("error", index, str(e)))
                events.put(("end", -1, None))
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                events.put(("crash", -1, e))

        thread = threading.Thread(target=produce, name="w2v-audio-reader", daemon=True)
        thread.start()
        try:
            while True:
                event = events.get()
                if event[0] == "end":
                    return
                if event[0] == "crash":
                    raise event[2]
                yield event
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    events.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)

    def workers_for(self, sources: list[AudioSource]) -> int:
        """How many model calls run at once for `sources` (see the module docstring).

        ``inference.workers`` > 0 is taken as given (on a CPU). 0 (auto) runs one call per
        thread, at most MAX_AUTO_WORKERS, when the inputs fill at least two batches of
        ``inference.batch_size`` per worker (run() then shares each batch out among the
        workers); otherwise one call at a time with all threads, so a single short file is
        not left to one thread.
        """
        if self.loaded.device != "cpu" or self.threads < 2:
            return 1
        if self.options.workers > 0:
            return min(self.options.workers, self.threads)
        workers = min(self.threads, MAX_AUTO_WORKERS)
        step = max(1, self.chunk_len - 2 * self.stride)
        calls = 0
        for source in sources:
            if source.duration_s is None:
                calls += 1
                continue
            chunks = max(1, -(-(round(source.duration_s * self.loaded.sample_rate) - 2 * self.stride) // step))
            calls += -(-chunks // max(1, self.options.batch_size))
        return workers if calls >= 2 * workers else 1

    def run(self, sources: list[AudioSource]) -> Iterator[Transcription]:
        """Transcribe `sources` in order, yielding one Transcription per source."""
        import torch

        started = time.perf_counter()
        sr = self.loaded.sample_rate
        workers = self.workers_for(sources)
        if workers > 1:
            torch.set_num_threads(max(1, self.threads // workers))
            logger.debug("%d model calls at once, %d thread(s) each", workers, torch.get_num_threads())
        executor = ThreadPoolExecutor(workers, thread_name_prefix="w2v-model") if workers > 1 else None
        # Calls queued ahead of the one whose results are taken next: a worker that finishes
        # a short input goes on with the next instead of waiting for a long one in front.
        ahead = 4 * workers if workers > 1 else 1
        # The batch is shared out among the workers, so the chunks in the model at once (and
        # the memory they take) stay at inference.batch_size.
        batch_size = max(1, self.options.batch_size // workers)
        progress = self._progress(sources)
        pending: list[Chunk] = []
        # In input order: ("batch", Future, chunks) and ("done" | "error", index, payload).
        queued: deque[tuple] = deque()
        in_flight = 0  # batches in `queued`
        kept: list[np.ndarray] = []
        kept_log_probs: list[np.ndarray] = []
        kept_samples: list[np.ndarray] = []
        trimmer = HeapTrimmer() if self.loaded.device == "cpu" else None  # see heap.py

        def call(batch: list[np.ndarray]):
            return self.forward(batch, log_probs=True) if self.keep_log_probs else (self.forward(batch), None)

        def flush() -> None:
            nonlocal in_flight
            if not pending:
                return
            batch = [c.samples for c in pending]
            if executor is None:
                future: Future = Future()
                future.set_result(call(batch))
            else:
                future = executor.submit(call, batch)
            queued.append(("batch", future, list(pending)))
            in_flight += 1
            pending.clear()

        def take(future: Future, chunks: list[Chunk]) -> None:
            ids, log_probs = future.result()
            for i, (chunk, row) in enumerate(zip(chunks, ids)):
                first, end = kept_frames(len(chunk.samples), chunk.left, chunk.right, self.ratio)
                kept.append(row[first:end])
                if log_probs is not None:
                    kept_log_probs.append(log_probs[i, first:end])
                    kept_samples.append(chunk.start + (first + np.arange(len(kept[-1]))) * self.ratio)
                if progress is not None:
                    seconds = (len(chunk.samples) - chunk.left - chunk.right) / sr
                    if progress.n + seconds > progress.total:  # headers without a length (MP3)
                        progress.total = progress.n + seconds
                    progress.update(seconds)
            if trimmer is not None:
                trimmer.maybe_trim()

        def finish(kind: str, index: int, payload: Any) -> Transcription:
            source = sources[index]
            if index == len(sources) - 1:  # before the last yield: callers may stop there
                logger.debug("transcribed %d inputs in %.1f s (model forward %.2f s)", len(sources),
                             time.perf_counter() - started, self.forward_s)
                if trimmer is not None and trimmer.calls:
                    logger.debug("heap trimmed %d times in %.2f s", trimmer.calls, trimmer.seconds)
            if kind == "error":
                kept.clear()
                kept_log_probs.clear()
                kept_samples.clear()
                return Transcription(source.key, error=payload)
            frame_ids = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
            kept.clear()
            result = Transcription(source.key, self.decode(frame_ids), payload / sr, frame_ids=frame_ids)
            if self.keep_log_probs:
                vocab = self.loaded.model.config.vocab_size
                result.log_probs = np.concatenate(kept_log_probs) if kept_log_probs else np.zeros((0, vocab), np.float32)
                result.frame_samples = np.concatenate(kept_samples) if kept_samples else np.zeros(0, np.int64)
                kept_log_probs.clear()
                kept_samples.clear()
            return result

        def drain(max_in_flight: int) -> Iterator[Transcription]:
            """Handle queued items in order while they are ready, or until at most
            `max_in_flight` batches are still running."""
            nonlocal in_flight
            while queued:
                kind, a, b = queued[0]
                if kind == "batch":
                    if in_flight <= max_in_flight and not a.done():
                        return
                    queued.popleft()
                    in_flight -= 1
                    take(a, b)
                else:
                    queued.popleft()
                    yield finish(kind, a, b)

        try:
            for kind, index, payload in self._events(sources):
                if kind == "chunk":
                    if pending and (len(pending) >= batch_size or len(pending[0].samples) != len(payload.samples)):
                        yield from drain(ahead - 1)  # room for one more call
                        flush()
                    pending.append(payload)
                    continue
                yield from drain(ahead - 1)
                flush()
                queued.append((kind, index, payload))
                yield from drain(ahead)
            yield from drain(0)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(self.threads)  # e.g. fine-tuning goes on after an eval
            if progress is not None:
                progress.close()

    def _progress(self, sources: list[AudioSource]):  # -> tqdm | None
        if not self.options.progress:
            return None
        total = sum(s.duration_s or 0.0 for s in sources)
        if len(sources) < 2 and total < LONG_INPUT_S:
            return None
        from .progress import progress_bar

        return progress_bar(total=round(total, 1), unit="s", unit_scale=False, desc="audio",
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")


def transcribe_sources(
    loaded: LoadedModel, sources: list[AudioSource], options: InferenceConfig, keep_log_probs: bool = False
) -> Iterator[Transcription]:
    """Library entry point: transcribe AudioSources with a loaded CTC model."""
    yield from Engine(loaded, options, keep_log_probs).run(sources)
