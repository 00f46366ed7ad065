"""Build a word n-gram LM (ARPA) from text, and read ARPA files.

The estimator is interpolated modified Kneser-Ney (Chen & Goodman 1998) as KenLM's
``lmplz`` computes it, so that ``w2v build-lm`` and ``lmplz -o N`` write the same
probabilities for the same text (a test checks this when ``lmplz`` is on PATH):

* Sentences are padded with one ``<s>`` and one ``</s>``.
* The highest order uses raw counts; a lower-order n-gram uses its continuation count (how
  many different words precede it), except one that starts with ``<s>``, which nothing can
  precede and so keeps its raw count.
* Each order n has three discounts from its counts of counts t_k (k = 1..4):
  ``D(k) = k - (k + 1) * Y * t_{k+1} / t_k`` with ``Y = t_1 / (t_1 + 2 t_2)``, D(3) applying
  to counts of 3 and more. Small corpora lack some of t_1..t_3; the order then falls back to
  D = (0.5, 1.0, 1.5), lmplz's ``--discount_fallback`` default, with a warning.
* ``p(w | h) = (c(hw) - D(c(hw))) / c(h.) + gamma(h) p(w | h')``, where
  ``gamma(h) = (D(1) N1(h.) + D(2) N2(h.) + D(3) N3+(h.)) / c(h.)``, and the unigram level
  interpolates with the uniform distribution over the vocabulary (every word, ``</s>`` and
  ``<unk>``; ``<s>`` is never predicted). ``<unk>`` has only that uniform share.
* Words of an optional word list (``--vocab``) that the text lacks join that vocabulary: like
  ``<unk>`` they get only the uniform share, but they are 1-grams of the ARPA file, so a beam
  search that knows the LM's words (pyctcdecode's unigram list) can spell them without its
  out-of-vocabulary penalty. lmplz has no such option; without a word list the two agree.
* An interpolated model's ARPA backoff weight for a context is exactly gamma(h): a word
  unseen after h gets ``gamma(h) p(w | h')``.

Everything is counted in memory (Python dicts): fine for domain text of a few million words;
for far more, build lmplz (``scripts/install_lm.sh --lmplz``), which counts on disk.
"""

from __future__ import annotations

import gzip
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError

logger = logging.getLogger("w2v")

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback's defaults
NEVER_LOG10 = -99.0  # ARPA's log10 probability of <s>, which is never predicted

Ngram = tuple[str, ...]


@dataclass
class LmStats:
    order: int
    sentences: int
    tokens: int  # words, without <s> and </s>
    ngrams: list[int]  # entries per order in the ARPA file
    discounts: list[tuple[float, float, float]]  # per order
    fallback_orders: list[int]  # orders whose discounts fell back to FALLBACK_DISCOUNTS


def read_sentences(path: str | Path, case: str = "keep") -> Iterator[list[str]]:
    """Whitespace-split words of each non-empty line, with `case` = keep|upper|lower."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if case == "upper":
                    line = line.upper()
                elif case == "lower":
                    line = line.lower()
                words = line.split()
                if words:
                    yield words
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); save the corpus as UTF-8") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the corpus: {e.strerror or e}") from None


def count_ngrams(sentences: Iterable[list[str]], order: int) -> tuple[list[Counter], int, int]:
    """Counts of every n-gram (n = 1..order) in the padded sentences: counts[n - 1][ngram].
    Returns (counts, sentences, tokens)."""
    counts = [Counter() for _ in range(order)]
    n_sentences = n_tokens = 0
    for words in sentences:
        for w in words:
            if w in (BOS, EOS):
                raise DataError(f"the corpus holds the reserved token {w!r}; remove it")
        n_sentences += 1
        n_tokens += len(words)
        padded = (BOS, *words, EOS)
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(padded) - n + 1):
                c[padded[i:i + n]] += 1
    return counts, n_sentences, n_tokens


def adjusted_counts(raw: list[Counter]) -> list[dict[Ngram, int]]:
    """Kneser-Ney counts: raw at the highest order and for n-grams starting with <s>,
    otherwise the number of distinct words seen before the n-gram."""
    order = len(raw)
    adjusted: list[dict[Ngram, int]] = [dict() for _ in range(order)]
    adjusted[-1] = dict(raw[-1])
    for n in range(order - 1, 0, -1):  # n-grams of length n from those of length n + 1
        continuation: Counter = Counter()
        for gram in raw[n]:
            continuation[gram[1:]] += 1
        adjusted[n - 1] = {g: (c if g[0] == BOS else continuation[g]) for g, c in raw[n - 1].items()}
    del adjusted[0][(BOS,)]  # <s> is only ever a context
    return adjusted


def discounts(counts: Iterable[int]) -> tuple[float, float, float] | None:
    """Modified Kneser-Ney discounts D(1), D(2), D(3+) from counts, or None when the counts
    of counts are too sparse to estimate them."""
    t = Counter(c for c in counts if c <= 4)
    if any(t[k] == 0 for k in (1, 2, 3)):  # t_4 may be 0: D(3+) is then 3, as in lmplz
        return None
    y = t[1] / (t[1] + 2 * t[2])
    d = tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))
    if any(not 0.0 <= dk <= k for k, dk in zip((1, 2, 3), d)):
        return None
    return d  # type: ignore[return-value]


def estimate(raw: list[Counter], extra_vocab: Iterable[str] = ()
             ) -> tuple[list[dict[Ngram, float]], list[dict[Ngram, float]], LmStats]:
    """Interpolated modified Kneser-Ney: (log10 probs per order, log10 backoffs per order,
    stats). Backoffs are keyed by the context n-gram, in the table of its own order.
    `extra_vocab`: words that join the vocabulary with no count (the uniform share only)."""
    order = len(raw)
    adjusted = adjusted_counts(raw)
    seen = {g[0] for g in raw[0]} - {BOS}
    unseen = set(extra_vocab) - seen - {BOS, EOS, UNK}
    vocab = seen | unseen
    vocab.add(UNK)
    probs: list[dict[Ngram, float]] = [dict() for _ in range(order)]
    gammas: list[dict[Ngram, float]] = [dict() for _ in range(order)]
    all_discounts: list[tuple[float, float, float]] = []
    fallback: list[int] = []
    for n in range(1, order + 1):
        counts = adjusted[n - 1]
        d = discounts(counts.values())
        if d is None:
            d = FALLBACK_DISCOUNTS
            fallback.append(n)
        all_discounts.append(d)
        # Totals and N1/N2/N3+ per context.
        total: dict[Ngram, int] = defaultdict(int)
        buckets: dict[Ngram, list[int]] = defaultdict(lambda: [0, 0, 0])
        for g, c in counts.items():
            h = g[:-1]
            total[h] += c
            buckets[h][min(c, 3) - 1] += 1
        gamma = {h: (d[0] * b[0] + d[1] * b[1] + d[2] * b[2]) / total[h] for h, b in buckets.items()}
        gammas[n - 1] = gamma
        lower = probs[n - 2] if n > 1 else None
        table = probs[n - 1]
        for g, c in counts.items():
            h = g[:-1]
            p = (c - d[min(c, 3) - 1]) / total[h]
            if lower is None:
                p += gamma[h] / len(vocab)
            else:
                p += gamma[h] * 10 ** _backed_off(g[1:], probs, gammas)
            table[g] = math.log10(p)
        if n == 1:
            uniform = math.log10(gamma[()] / len(vocab))
            table[(UNK,)] = uniform if (UNK,) not in table else table[(UNK,)]
            for w in unseen:
                table[(w,)] = uniform
            table[(BOS,)] = NEVER_LOG10
    # A context's backoff weight is its gamma, kept with the context's own n-gram.
    backoffs: list[dict[Ngram, float]] = [dict() for _ in range(order)]
    for n in range(1, order):
        for h, gam in gammas[n].items():
            backoffs[n - 1][h] = math.log10(gam)
    stats = LmStats(order, 0, 0, [len(t) for t in probs], all_discounts, fallback)
    return probs, backoffs, stats


def _backed_off(gram: Ngram, probs: list[dict[Ngram, float]], gammas: list[dict[Ngram, float]]) -> float:
    """log10 p(gram[-1] | gram[:-1]) from the tables of orders <= len(gram), by backing off."""
    bow = 0.0
    while True:
        p = probs[len(gram) - 1].get(gram)
        if p is not None:
            return p + bow
        context = gram[:-1]
        gam = gammas[len(gram) - 1].get(context) if context else None
        if gam is not None:
            bow += math.log10(gam)
        gram = gram[1:]


def format_arpa(probs: list[dict[Ngram, float]], backoffs: list[dict[Ngram, float]]) -> Iterator[str]:
    order = len(probs)
    yield "\\data\\"
    for n, table in enumerate(probs, 1):
        yield f"ngram {n}={len(table)}"
    for n, table in enumerate(probs, 1):
        yield ""
        yield f"\\{n}-grams:"
        for g in sorted(table):
            line = f"{table[g]:.7g}\t{' '.join(g)}"
            if n < order:
                b = backoffs[n - 1].get(g)
                if b is not None:
                    line += f"\t{b:.7g}"
            yield line
    yield ""
    yield "\\end\\"


def read_vocab(path: str | Path, case: str = "keep") -> set[str]:
    """The words of a word list (whitespace-separated, e.g. one per line), cased as the text."""
    words: set[str] = set()
    for line in read_sentences(path, case):
        words.update(line)
    if not words:
        raise DataError(f"{path}: the word list is empty; give a file of words, one per line")
    return words


def build_lm(text_path: str | Path, output: str | Path, order: int = 3, case: str = "keep",
             vocab_path: str | Path | None = None) -> LmStats:
    """Estimate an order-`order` modified Kneser-Ney LM from a text file (one sentence per
    line) and write it as ARPA to `output` (atomically). `vocab_path`: a word list whose words
    the text lacks join the 1-grams with the uniform share (module docstring)."""
    from .writers import write_atomic

    if order < 1:
        raise DataError(f"--order must be at least 1, got {order}")
    raw, n_sentences, n_tokens = count_ngrams(read_sentences(text_path, case), order)
    if n_sentences == 0:
        raise DataError(f"{text_path}: no text to build a language model from")
    extra = read_vocab(vocab_path, case) if vocab_path is not None else set()
    probs, backoffs, stats = estimate(raw, extra)
    stats.sentences, stats.tokens = n_sentences, n_tokens
    if stats.fallback_orders:
        logger.warning("too little text to estimate the discounts of order(s) %s; used %s "
                       "(lmplz --discount_fallback)", ", ".join(map(str, stats.fallback_orders)),
                       FALLBACK_DISCOUNTS)
    write_atomic(output, "\n".join(format_arpa(probs, backoffs)) + "\n")
    return stats


# -- reading ARPA ---------------------------------------------------------------------------


def open_arpa(path: str | Path, mode: str = "rt") -> Any:
    """An ARPA file, plain or gzip-compressed (told by its first bytes, as kenlm does)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, mode, **({"encoding": "utf-8"} if "t" in mode else {}))
    return open(path, mode, **({"encoding": "utf-8"} if "t" in mode else {}))


def is_arpa(path: str | Path) -> bool:
    """Whether `path` is an ARPA text file, plain or gzipped (it starts with a \\data\\ line)."""
    try:
        with open_arpa(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError):
        return False
    return head.lstrip().startswith(b"\\data\\")


@dataclass
class ArpaModel:
    """An ARPA LM in memory, for checks and small models: log10 probs and backoffs."""

    probs: list[dict[Ngram, float]]
    backoffs: list[dict[Ngram, float]]

    @property
    def order(self) -> int:
        return len(self.probs)

    def log10_prob(self, word: str, context: Ngram = ()) -> float:
        """log10 p(word | context) with ARPA backoff (context oldest word first)."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        bow = 0.0
        while True:
            gram = (*context, word)
            p = self.probs[len(gram) - 1].get(gram)
            if p is not None:
                return p + bow
            if not context:
                return self.probs[0][(UNK,)] + bow
            bow += self.backoffs[len(context) - 1].get(context, 0.0)
            context = context[1:]


def read_arpa(path: str | Path) -> ArpaModel:
    probs: list[dict[Ngram, float]] = []
    backoffs: list[dict[Ngram, float]] = []
    n = 0
    with open_arpa(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("ngram ") or line == "\\data\\":
                continue
            if line == "\\end\\":
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                n = int(line[1:line.index("-")])
                while len(probs) < n:
                    probs.append({})
                    backoffs.append({})
                continue
            fields = line.split("\t")
            if len(fields) == 1:  # some writers separate with spaces
                parts = line.split()
                fields = [parts[0], " ".join(parts[1:n + 1]), *parts[n + 1:]]
            gram = tuple(fields[1].split())
            probs[n - 1][gram] = float(fields[0])
            if len(fields) > 2:
                backoffs[n - 1][gram] = float(fields[2])
    return ArpaModel(probs, backoffs)


def read_arpa_unigrams(path: str | Path) -> list[str]:
    """The words of an ARPA file's 1-gram section, without <s>, </s> and <unk>."""
    words: list[str] = []
    section = False
    with open_arpa(path) as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                section = True
                continue
            if section:
                if not line or line.startswith("\\"):
                    break
                parts = line.split()
                if len(parts) >= 2 and parts[1] not in (BOS, EOS, UNK):
                    words.append(parts[1])
    if not words:
        raise DataError(f"{path}: no unigrams in the ARPA file; is it a language model?")
    return words
