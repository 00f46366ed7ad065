"""`w2v eval` as a library: transcribe a Dataset, score it with jiwer, write a report.

Inference goes through the engine of `w2v transcribe` (same batching, chunking and progress
bar), so a transcript scored here is the one `w2v transcribe` prints. References and
hypotheses are both normalised with ``text.normalize_text(config.text)`` before scoring, and
what is written to ``utterances.jsonl`` is exactly what was scored, so the corpus WER in
``summary.json`` equals ``jiwer.wer(references, hypotheses)`` over that file.

WER and CER are corpus figures: all errors over all reference words (characters), not a
mean of per-utterance rates, which would over-weight short utterances.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .data import Dataset
from .decoding import PRUNING_DEFAULTS, Decoder, DecodeOptions
from .errors import DataError
from .inference import AudioSource, transcribe_sources
from .models import LoadedModel
from .text import describe_normalization, normalize_text
from .writers import write_atomic

logger = logging.getLogger("w2v")

ALIGNMENT_WIDTH = 100  # characters per REF/HYP line in report.md before it wraps
TRN_ID_UNSAFE = re.compile(r"[\s()]+")  # what an utterance id cannot hold in a trn file


@dataclass
class UtteranceScore:
    """One scored utterance; reference and hypothesis are normalised, as scored."""

    id: str
    reference: str
    hypothesis: str
    duration_s: float  # seconds of audio read
    wer: float  # fraction
    cer: float  # fraction
    substitutions: int  # words
    deletions: int
    insertions: int
    hits: int
    char_errors: int  # character substitutions + deletions + insertions
    reference_chars: int

    @property
    def word_errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


@dataclass
class EvalResult:
    dataset: str
    model: str
    normalization: str  # describe_normalization(config.text)
    wer: float  # fraction of reference words: (S + D + I) / (S + D + hits)
    cer: float  # fraction of reference characters, spaces included
    substitutions: int  # words, summed over utterances
    deletions: int
    insertions: int
    hits: int
    char_errors: int
    reference_chars: int
    utterances: int  # scored
    audio_s: float  # seconds of audio scored
    wall_s: float  # seconds spent reading audio and running the model
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason), not scored
    scores: list[UtteranceScore] = field(default_factory=list, repr=False)
    decoder: str = "greedy"  # describe_decoder(): greedy, or beam with its width, LM and weights

    @property
    def reference_words(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of compute per second of audio (lower is faster)."""
        return self.wall_s / self.audio_s if self.audio_s else 0.0

    @property
    def audio_s_per_s(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary (no per-utterance scores), as written to summary.json."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "normalization": self.normalization,
            "decoder": self.decoder,
            "wer": self.wer,
            "cer": self.cer,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "hits": self.hits,
            "reference_words": self.reference_words,
            "char_errors": self.char_errors,
            "reference_chars": self.reference_chars,
            "utterances": self.utterances,
            "audio_s": round(self.audio_s, 3),
            "wall_s": round(self.wall_s, 3),
            "rtf": round(self.rtf, 5),
            "audio_s_per_s": round(self.audio_s_per_s, 3),
            "skipped": len(self.skipped),
            "skipped_items": [{"id": uid, "reason": reason} for uid, reason in self.skipped],
        }


def score_utterance(uid: str, reference: str, hypothesis: str, duration_s: float = 0.0) -> UtteranceScore:
    """Word and character errors of one normalised (reference, hypothesis) pair."""
    import jiwer

    words = jiwer.process_words(reference, hypothesis)
    chars = jiwer.process_characters(reference, hypothesis)
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    reference_chars = chars.substitutions + chars.deletions + chars.hits
    return UtteranceScore(uid, reference, hypothesis, duration_s, words.wer, chars.cer,
                          words.substitutions, words.deletions, words.insertions, words.hits,
                          char_errors, reference_chars)


def summarize(scores: list[UtteranceScore], skipped: list[tuple[str, str]], dataset: str, model: str,
              normalization: str, wall_s: float) -> EvalResult:
    """Corpus figures from per-utterance scores: errors summed, then divided."""
    s = sum(x.substitutions for x in scores)
    d = sum(x.deletions for x in scores)
    i = sum(x.insertions for x in scores)
    h = sum(x.hits for x in scores)
    char_errors = sum(x.char_errors for x in scores)
    reference_chars = sum(x.reference_chars for x in scores)
    return EvalResult(
        dataset, model, normalization,
        wer=(s + d + i) / (s + d + h) if s + d + h else 0.0,
        cer=char_errors / reference_chars if reference_chars else 0.0,
        substitutions=s, deletions=d, insertions=i, hits=h,
        char_errors=char_errors, reference_chars=reference_chars,
        utterances=len(scores), audio_s=sum(x.duration_s for x in scores), wall_s=wall_s,
        skipped=list(skipped), scores=scores,
    )


def evaluate(
    loaded: LoadedModel,
    dataset: Dataset,
    config: Config,
    output_dir: str | Path | None = None,
    decode: DecodeOptions | None = None,
) -> EvalResult:
    """Transcribe every utterance of `dataset` with `loaded` and score it against its
    transcript. `loaded` may be a model in training: it is put in eval mode for the run and
    given back in the mode it came in; nothing is reloaded.

    Items the dataset reader skipped, and utterances whose audio fails to read here, are
    listed in `skipped` and not scored. With data.on_bad_item 'stop' the first failure
    raises. Raises DataError when no utterance could be scored. `decode` picks greedy (the
    default) or beam search, with or without an n-gram LM, exactly as `w2v transcribe` does.
    With `output_dir`, writes utterances.jsonl, summary.json, report.md, ref.trn and hyp.trn there.
    """
    sr = loaded.sample_rate
    block_s = config.audio.block_s
    sources = [AudioSource(u.id, (lambda u=u: u.blocks(sr, block_s)), u.duration_s) for u in dataset.utterances]
    skipped = list(dataset.skipped)
    scores: list[UtteranceScore] = []
    model = loaded.model
    was_training = bool(getattr(model, "training", False))
    model.eval()  # dropout and SpecAugment masking off, whatever the caller was doing
    started = time.perf_counter()
    decoder = Decoder(loaded, decode)
    results = transcribe_sources(loaded, sources, config.inference, decoder.keep_log_probs)
    try:
        for utt, result in zip(dataset.utterances, results):
            assert result.key == utt.id, "the engine yields one result per source, in order"
            if result.error is not None:
                if config.data.on_bad_item == "stop":
                    raise DataError(f"dataset {dataset.name}: {utt.id}: {result.error}; "
                                    f"fix it or set data.on_bad_item=skip")
                skipped.append((utt.id, result.error))
                continue
            decoder.finish(result)
            reference = normalize_text(utt.text, config.text)
            if not reference:
                skipped.append((utt.id, "empty transcript after normalisation"))
                continue
            hypothesis = normalize_text(result.text, config.text)
            scores.append(score_utterance(utt.id, reference, hypothesis, result.duration_s))
    finally:
        results.close()  # stops the engine's reader thread when a failure ends the loop early
        if was_training:
            model.train()
    wall_s = time.perf_counter() - started
    if not scores:
        reasons = "; ".join(f"{uid}: {reason}" for uid, reason in skipped[:5])
        raise DataError(f"dataset {dataset.name}: no utterance could be scored ({reasons})")
    result = summarize(scores, skipped, dataset.name, loaded.name, describe_normalization(config.text), wall_s)
    result.decoder = describe_decoder(decoder.options)
    if output_dir is not None:
        write_report(result, output_dir, config.eval.worst)
    return result


def describe_decoder(decode: DecodeOptions) -> str:
    if decode.decoder == "greedy":
        return "greedy"
    beam = decode.beam
    text = f"beam {beam.beam_width}"
    pruning = [f"{key} {getattr(beam, key):g}" for key, default in PRUNING_DEFAULTS.items()
               if getattr(beam, key) not in (None, default)]
    if pruning:
        text += f" ({', '.join(pruning)})"
    if beam.lm_path:
        text += f", LM {beam.lm_path} (alpha {beam.alpha:g}, beta {beam.beta:g})"
    if beam.hotwords:
        text += f", {len(beam.hotwords)} hotwords (weight {beam.hotword_weight:g})"
    return text


# -- output -------------------------------------------------------------------------------


def summary_rows(result: EvalResult) -> list[tuple[str, str]]:
    """The short table printed by `w2v eval` and shown at the top of report.md."""
    return [
        ("dataset", result.dataset),
        ("model", result.model),
        ("utterances", f"{result.utterances}"),
        ("audio", f"{result.audio_s / 3600:.3f} h ({result.audio_s:.1f} s)"),
        ("WER", f"{100 * result.wer:.2f} % (S {result.substitutions}, D {result.deletions}, "
                f"I {result.insertions} of {result.reference_words} words)"),
        ("CER", f"{100 * result.cer:.2f} % ({result.char_errors} of {result.reference_chars} characters)"),
        ("speed", f"RTF {result.rtf:.4f}, {result.audio_s_per_s:.1f} s of audio per second"),
        ("skipped", f"{len(result.skipped)}"),
        ("normalisation", result.normalization),
        ("decoder", result.decoder),
    ]


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def aligned(score: UtteranceScore) -> str:
    """REF/HYP lines aligned word by word, S/D/I marked under the errors (jiwer's layout),
    wrapped at ALIGNMENT_WIDTH characters."""
    import jiwer

    text = jiwer.visualize_alignment(jiwer.process_words(score.reference, score.hypothesis),
                                     show_measures=False, skip_correct=False, line_width=ALIGNMENT_WIDTH)
    return "\n".join(line.rstrip() for line in text.splitlines() if not line.startswith("=== SENTENCE")).strip("\n")


def worst(scores: list[UtteranceScore], n: int) -> list[UtteranceScore]:
    """The n utterances with the highest WER (ties: more word errors first)."""
    return sorted(scores, key=lambda x: (-x.wer, -x.word_errors, x.id))[:max(n, 0)]


def report_markdown(result: EvalResult, n_worst: int = 10) -> str:
    def cell(value: str) -> str:
        return value.replace("|", "\\|")

    lines = [f"# Evaluation of {result.model} on {result.dataset}", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {cell(value)} |" for key, value in summary_rows(result)]
    shown = worst(result.scores, n_worst)
    if shown:
        lines += ["", f"## The {len(shown)} worst utterances", ""]
        for rank, score in enumerate(shown, 1):
            lines += [f"### {rank}. {score.id}: WER {100 * score.wer:.1f} %, CER {100 * score.cer:.1f} % "
                      f"(S {score.substitutions}, D {score.deletions}, I {score.insertions}; "
                      f"{score.duration_s:.2f} s)", "", "```", aligned(score), "```", ""]
    if result.skipped:
        lines += ["", f"## Skipped ({len(result.skipped)}, not scored)", ""]
        lines += [f"- `{uid}`: {reason}" for uid, reason in result.skipped]
    return "\n".join(lines).rstrip() + "\n"


def write_report(result: EvalResult, output_dir: str | Path, n_worst: int = 10) -> None:
    """utterances.jsonl, summary.json, report.md and the sclite trn files in `output_dir`, each
    written atomically."""
    output_dir = Path(output_dir)
    records = []
    for score in result.scores:
        record = asdict(score)
        record["duration_s"] = round(record["duration_s"], 3)
        records.append(json.dumps(record, ensure_ascii=False))
    write_atomic(output_dir / "utterances.jsonl", "".join(r + "\n" for r in records))
    write_atomic(output_dir / "summary.json", json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    write_atomic(output_dir / "report.md", report_markdown(result, n_worst))
    write_atomic(output_dir / "ref.trn", trn(result.scores, "reference"))
    write_atomic(output_dir / "hyp.trn", trn(result.scores, "hypothesis"))
    logger.info("wrote utterances.jsonl, summary.json, report.md, ref.trn and hyp.trn to %s", output_dir)


def trn(scores: list[UtteranceScore], side: str) -> str:
    """References or hypotheses as scored, in NIST trn format (`words (id)` per line), so that
    `sclite -r ref.trn trn -h hyp.trn trn -i rm` recounts the same errors. Whitespace and
    parentheses in an id become `_` (sclite reads the id up to the closing parenthesis)."""
    return "".join(f"{getattr(score, side)} ({TRN_ID_UNSAFE.sub('_', score.id)})\n" for score in scores)


# -- comparing two runs on the same utterances ---------------------------------------------


@dataclass
class Comparison:
    """Run B against run A on the same utterances: WER difference and its paired bootstrap."""

    utterances: int
    reference_words: int
    wer_a: float
    wer_b: float
    difference: float  # wer_b - wer_a (fraction; x100 for points)
    low: float  # the difference's bootstrap confidence interval
    high: float
    confidence: float
    changed: int  # utterances whose hypothesis differs
    resamples: int


def read_scores(path: str | Path) -> list[UtteranceScore]:
    """The utterances.jsonl of a `w2v eval --output-dir` folder (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "utterances.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a folder written by `w2v eval --output-dir`")
    scores = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            scores.append(UtteranceScore(**json.loads(line)))
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}, line {number}: not an utterance record of `w2v eval` ({e})") from None
    return scores


def compare(a: list[UtteranceScore], b: list[UtteranceScore], resamples: int = 10_000,
            confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Paired bootstrap of the corpus-WER difference B - A over utterances (Bisani and Ney,
    2004): utterances are drawn with replacement, the same draw for both runs, and the
    interval is the central `confidence` share of the resampled differences. Both runs
    must have scored the same utterances against the same references."""
    import numpy as np

    if not a or not b:
        raise DataError("no utterances to compare")
    by_id = {s.id: s for s in a}
    if len(by_id) != len(a) or {s.id for s in b} != set(by_id) or len(b) != len(a):
        raise DataError("the two runs did not score the same utterances; compare runs on one dataset")
    pairs = [(by_id[s.id], s) for s in b]
    if any(x.reference != y.reference for x, y in pairs):
        raise DataError("the two runs scored different references (another text normalisation?)")
    words = np.array([x.hits + x.substitutions + x.deletions for x, _ in pairs], dtype=np.int64)
    errors_a = np.array([x.word_errors for x, _ in pairs], dtype=np.int64)
    errors_b = np.array([y.word_errors for _, y in pairs], dtype=np.int64)
    total = int(words.sum())
    if total == 0:
        raise DataError("the references have no words")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
    diffs = (errors_b[draws].sum(1) - errors_a[draws].sum(1)) / np.maximum(words[draws].sum(1), 1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return Comparison(
        utterances=len(pairs), reference_words=total,
        wer_a=float(errors_a.sum() / total), wer_b=float(errors_b.sum() / total),
        difference=float((errors_b.sum() - errors_a.sum()) / total), low=float(low), high=float(high),
        confidence=confidence, changed=sum(x.hypothesis != y.hypothesis for x, y in pairs),
        resamples=resamples)
