#!/usr/bin/env python
"""WER of two `w2v eval --output-dir` runs on the same utterances, their difference and its
paired-bootstrap confidence interval (how much of a difference is noise of the test set).

    python scripts/compare_evals.py runs/measure-demo/hibari-greedy-fp32 runs/measure-demo/hibari-greedy-bf16
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from w2v_cli.errors import W2VError
from w2v_cli.evaluate import compare, read_scores
from w2v_cli.writers import write_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="eval folder (or utterances.jsonl) of the reference run")
    parser.add_argument("b", help="eval folder (or utterances.jsonl) of the run compared with it")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--json-out", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args()
    try:
        c = compare(read_scores(args.a), read_scores(args.b), args.resamples, args.confidence)
    except W2VError as e:
        sys.exit(f"compare_evals: {e}")
    if args.json_out:
        write_atomic(args.json_out, json.dumps(asdict(c), indent=2) + "\n")
    if args.json:
        print(json.dumps(asdict(c), indent=2))
        return
    print(f"A {args.a}: WER {c.wer_a:.4f}\nB {args.b}: WER {c.wer_b:.4f}\n"
          f"B - A: {100 * c.difference:+.2f} points, {100 * c.confidence:.0f}% interval "
          f"[{100 * c.low:+.2f}, {100 * c.high:+.2f}] (paired bootstrap, {c.resamples} resamples); "
          f"{c.changed} of {c.utterances} hypotheses differ, {c.reference_words} reference words")


if __name__ == "__main__":
    main()
