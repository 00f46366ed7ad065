"""CTC forced alignment: where each word and character of a known transcript is spoken.

The best (Viterbi) CTC path of the transcript through the model's per-frame log-probs,
computed here in numpy. torchaudio's ``forced_align`` does the same, but no torchaudio
release installs beside this project's torch (2.13): torchaudio pins the torch it was built
with, so the pass is the project's own. It is vectorised over the trellis states, one numpy
step per frame; memory is one int8 back-pointer per (frame, state), which bounds a single
alignment to ``MAX_TRELLIS`` cells (about 1 GB: a 10-minute recording with its transcript).

The trellis is the usual CTC one: states are blank, l1, blank, l2, ..., lL, blank; a state
is entered from itself, from the state before it, or from two before when that skips a
blank between two different labels. Times and scores follow ``timestamps.py``: a
character spans the frames its state holds, a word runs from its first character to its
last, and a score is the mean probability of the path's token over those frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ctc import encode_transcript, min_frames
from .errors import DataError, W2VError
from .timestamps import WordTime, model_clock, words_from_char_spans, word_record

logger = logging.getLogger("w2v")

MAX_TRELLIS = 1_000_000_000  # frames x states; one int8 back-pointer each


def ctc_viterbi(log_probs: np.ndarray, targets: list[int], blank: int) -> tuple[np.ndarray, float]:
    """The best CTC path of `targets` through `log_probs` (frames, vocab).

    Returns (states, log_prob): the trellis state per frame, (frames,) int64, where state
    2k + 1 is target k and even states are blanks, and the path's total log-probability.
    Raises DataError when there are too few frames for the targets.
    """
    frames = len(log_probs)
    n_states = 2 * len(targets) + 1
    if frames < min_frames(targets):
        raise DataError(f"the audio is too short for the transcript: {frames} frames, and CTC needs "
                        f"{min_frames(targets)} (one per character, plus a blank between repeated ones)")
    if frames * n_states > MAX_TRELLIS:
        raise DataError(f"alignment too large: {frames} frames x {n_states} states; cut the recording "
                        f"and its transcript into pieces of a few minutes")
    ext = np.full(n_states, blank, dtype=np.int64)
    ext[1::2] = targets
    # A label state may skip the blank before it when the label two states back differs.
    can_skip = np.zeros(n_states, dtype=bool)
    can_skip[3::2] = ext[3::2] != ext[1:-2:2]
    neg_inf = np.float64(-np.inf)
    alpha = np.full(n_states, neg_inf)
    alpha[0] = log_probs[0, ext[0]]
    if n_states > 1:
        alpha[1] = log_probs[0, ext[1]]
    back = np.zeros((frames, n_states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    candidates = np.empty((3, n_states))
    columns = np.arange(n_states)
    for t in range(1, frames):
        candidates[0] = alpha
        candidates[1, 0] = neg_inf
        candidates[1, 1:] = alpha[:-1]
        candidates[2, :2] = neg_inf
        candidates[2, 2:] = np.where(can_skip[2:], alpha[:-2], neg_inf)
        choice = candidates.argmax(0)
        alpha = candidates[choice, columns] + log_probs[t, ext]
        back[t] = choice
    last = n_states - 1
    if n_states > 1 and alpha[n_states - 2] > alpha[last]:
        last = n_states - 2
    score = float(alpha[last])
    if not np.isfinite(score):
        raise DataError("no alignment of the transcript has non-zero probability under the model")
    states = np.empty(frames, dtype=np.int64)
    s = last
    for t in range(frames - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])  # int8 arithmetic would overflow past state 127
    return states, score


def label_spans(states: np.ndarray) -> list[tuple[int, int]]:
    """(first frame, end frame exclusive) of each label k from a path of trellis states."""
    frames = np.flatnonzero(states % 2 == 1)
    labels = (states[frames] - 1) // 2
    starts = np.flatnonzero(np.diff(labels, prepend=-1) != 0)
    ends = np.append(starts[1:], len(frames)) - 1
    return [(int(frames[a]), int(frames[b]) + 1) for a, b in zip(starts, ends)]


@dataclass
class Alignment:
    key: str  # path or utterance id
    text: str  # the transcript as aligned (after case adaptation)
    duration_s: float
    log_prob: float  # of the best path, natural log
    words: list[WordTime]

    def record(self, model: str) -> dict[str, Any]:
        """JSON-ready: times in seconds, `score` = mean probability of the aligned token
        over the span's frames."""
        def scored(item: dict[str, Any]) -> dict[str, Any]:
            return {("score" if k == "confidence" else k): v for k, v in item.items()}

        words = []
        for word in self.words:
            w = scored(word_record(word))
            if "chars" in w:
                w["chars"] = [scored(c) for c in w["chars"]]
            words.append(w)
        return {"path": self.key, "text": self.text, "duration_s": round(self.duration_s, 3),
                "model": model, "log_prob": round(self.log_prob, 3), "words": words}


def align_log_probs(
    log_probs: np.ndarray, tokenizer: Any, text: str, clock: Any, unk: bool = False
) -> tuple[str, float, list[WordTime]]:
    """Align `text` to one recording's log-probs (frames, vocab): (text as aligned, path
    log-prob, words with char times and scores)."""
    text, ids = encode_transcript(tokenizer, text, unk)
    delimiter_id = tokenizer.convert_tokens_to_ids(getattr(tokenizer, "word_delimiter_token", None) or "|")
    # Word delimiters at the ends carry no time: a transcript's outer spaces are not speech.
    while ids and ids[0] == delimiter_id:
        ids = ids[1:]
    while ids and ids[-1] == delimiter_id:
        ids = ids[:-1]
    if not ids:
        raise DataError("the transcript is empty; give the words spoken in the audio")
    states, log_prob = ctc_viterbi(log_probs, ids, tokenizer.pad_token_id)
    spans = label_spans(states)
    # The transcript's own characters (not '<unk>') where they map one to one onto labels.
    chars = [c for c in text if not c.isspace()]
    label_chars = iter(chars if len(chars) == sum(i != delimiter_id for i in ids) else
                       tokenizer.convert_ids_to_tokens([i for i in ids if i != delimiter_id]))
    char_spans = [(" " if i == delimiter_id else next(label_chars), s, e) for i, (s, e) in zip(ids, spans)]
    path_tokens = np.where(states % 2 == 1, np.asarray(ids)[np.maximum(states - 1, 0) // 2], tokenizer.pad_token_id)
    frame_probs = np.exp(log_probs[np.arange(len(states)), path_tokens])
    return text, log_prob, words_from_char_spans(char_spans, clock, frame_probs)


def align_sources(
    loaded: Any, items: list[tuple[Any, str]], options: Any, unk: bool = False
) -> Iterator[Alignment | tuple[str, str]]:
    """Align each (AudioSource, transcript) in order; yields an Alignment, or (key, error)
    for an input that fails (unreadable audio, bad characters, too short), and goes on."""
    from .inference import transcribe_sources

    tokenizer = loaded.processor.tokenizer
    checked: list[tuple[Any, str]] = []
    failed: dict[int, str] = {}
    for n, (source, text) in enumerate(items):
        try:  # fail on the transcript before running the model
            encode_transcript(tokenizer, text, unk)
        except W2VError as e:
            failed[n] = str(e)
        checked.append((source, text))
    runnable = [i for i in range(len(items)) if i not in failed]
    results = transcribe_sources(loaded, [items[i][0] for i in runnable], options, keep_log_probs=True)
    for n, (source, text) in enumerate(checked):
        if n in failed:
            yield source.key, failed[n]
            continue
        result = next(results)
        if result.error is not None:
            yield result.key, result.error
            continue
        try:
            aligned, log_prob, words = align_log_probs(
                result.log_probs, tokenizer, text, model_clock(loaded, result.frame_samples), unk)
        except W2VError as e:
            yield result.key, str(e)
            continue
        yield Alignment(result.key, aligned, result.duration_s, log_prob, words)
