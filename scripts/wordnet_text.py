#!/usr/bin/env python3
"""English sentences from WordNet's usage examples, as extra *training* text for the demo corpus.

The LibriSpeech text file gives the demo model about 100,000 training words; a character CTC
model trained on so little text learns its sentences more than English spelling. WordNet 3.0
(Debian package `wordnet-base`, Princeton's licence: use and redistribution with its copyright
notice) holds ~48,000 quoted usage examples in its glosses, e.g. "he trusted her clear
steadiness that she would do what she said". This script turns them into the id/text TSV that
`scripts/make_synth_corpus.py --extra-text` reads:

* text upper-cased, everything but letters and apostrophes made a space (the LibriSpeech
  transcripts' alphabet); examples with digits are left out (their spoken form is unknown);
* at least --min-words and at most --max-words words; each distinct text once;
* ids `wordnet-<pos>-<synset offset>-<k>`, sorted, so the output is deterministic.

`--what glosses` gives the definitions instead (the gloss before its first example, up to the
first ';', parentheses removed; ids `wordnet-gloss-<pos>-<synset offset>`): text the demo
corpus never trains on, for a development set (scripts/tune_lm.py picks the LM weights on it).

Usage::

    apt-get install wordnet-base          # scripts/install_tts.sh does it
    .venv/bin/python scripts/wordnet_text.py --out data/text-extra/wordnet_examples.tsv
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
QUOTED = re.compile(r'"([^"]+)"')
PARENS = re.compile(r"\([^()]*\)")
NOT_LETTER = re.compile(r"[^A-Z']+")


def normalize(example: str) -> str | None:
    """Upper-case letters, apostrophes and single spaces; None for examples with digits."""
    if re.search(r"[0-9]", example):
        return None
    text = NOT_LETTER.sub(" ", example.upper())
    # apostrophes only inside words ("DON'T"), not quotes around them
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def examples(wordnet_dir: Path) -> Iterator[tuple[str, str]]:
    """(id, raw example) for every quoted usage example in the data files."""
    for pos, name in POS_FILES.items():
        path = wordnet_dir / name
        with open(path, encoding="latin-1") as f:  # the files are ASCII with a few Latin-1 bytes
            for line in f:
                if line.startswith("  ") or "|" not in line:  # licence header lines
                    continue
                offset = line.split(" ", 1)[0]
                gloss = line.split("|", 1)[1]
                for k, ex in enumerate(QUOTED.findall(gloss)):
                    yield f"wordnet-{pos}-{offset}-{k}", ex


def glosses(wordnet_dir: Path) -> Iterator[tuple[str, str]]:
    """(id, raw definition) for every synset: its gloss up to the first ';' or example,
    without parenthesised remarks ("(usually followed by `to')")."""
    for pos, name in POS_FILES.items():
        path = wordnet_dir / name
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue
                offset = line.split(" ", 1)[0]
                gloss = line.split("|", 1)[1].split('"', 1)[0].split(";", 1)[0]
                definition = PARENS.sub(" ", gloss).replace("`", " ")
                if definition.strip():
                    yield f"wordnet-gloss-{pos}-{offset}", definition


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wordnet-dir", type=Path, default=WORDNET_DIR,
                   help="folder with WordNet's data.noun, data.verb, data.adj, data.adv")
    p.add_argument("--out", type=Path, required=True, help="TSV to write (id, text)")
    p.add_argument("--what", choices=("examples", "glosses"), default="examples",
                   help="usage examples (training text) or definitions (development text)")
    p.add_argument("--min-words", type=int, default=4)
    p.add_argument("--max-words", type=int, default=30)
    a = p.parse_args(argv)
    missing = [n for n in POS_FILES.values() if not (a.wordnet_dir / n).exists()]
    if missing:
        sys.exit(f"wordnet_text: {a.wordnet_dir} lacks {', '.join(missing)}: "
                 "install Debian's wordnet-base (apt-get install wordnet-base) or pass --wordnet-dir")
    rows, seen, n_raw = [], set(), 0
    source = examples if a.what == "examples" else glosses
    for ex_id, raw in source(a.wordnet_dir):
        n_raw += 1
        text = normalize(raw)
        if not text or not a.min_words <= len(text.split()) <= a.max_words or text in seen:
            continue
        seen.add(text)
        rows.append((ex_id, text))
    rows.sort()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("id\ttext\n")
        f.writelines(f"{i}\t{t}\n" for i, t in rows)
    tmp.replace(a.out)
    words = sum(len(t.split()) for _, t in rows)
    print(f"wordnet_text: {len(rows)} sentences, {words} words (of {n_raw} {a.what}) -> {a.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
