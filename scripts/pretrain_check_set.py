#!/usr/bin/env python3
"""`w2v pretrain-check` over many recordings: one recording's masked cosine similarity
depends on which spans the seed masks and on the recording, so the demo model card reports
the mean over held-out sets as well.

    .venv/bin/python scripts/pretrain_check_set.py --model runs/demo-pretrain \\
        --set hibari=data/synth/heldout_hibari.tsv --set real=../shared/data/speech/manifest.tsv \\
        --max-items 30 --json runs/demo-pretrain/pretrain-check-sets.json

Each manifest is read with the project's own reader (the same as `w2v eval`); the check uses
the `check:` defaults (mask probability 0.2, span 2, seed 0, threshold 0.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2v_cli.config import Config  # noqa: E402
from w2v_cli.data import load_dataset  # noqa: E402
from w2v_cli.models import load_pretraining_model  # noqa: E402
from w2v_cli.pretrain_check import pretrain_check  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", "-m", required=True, help="pretraining model: folder, built-in name or hub id")
    parser.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME=MANIFEST",
                        help="a named set of recordings (repeatable)")
    parser.add_argument("--max-items", type=int, default=30, help="first N recordings of each set")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    config = Config()
    config.data.max_items = args.max_items
    loaded = load_pretraining_model(args.model, "cpu")
    report = {"model": args.model, "threshold": config.check.threshold, "sets": {}}
    print("| set | recordings | mean masked cosine | min | max | share > threshold | mean shuffled |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for item in args.sets:
        name, _, manifest = item.partition("=")
        dataset = load_dataset(manifest, config.data)
        masked, shuffled = [], []
        for utt in dataset.utterances:
            samples = utt.load(loaded.sample_rate)
            result = pretrain_check(loaded, samples, config.check, utt.path)
            masked.append(result.cosine_masked)
            shuffled.append(result.cosine_shuffled)
        row = {"manifest": manifest, "recordings": len(masked), "mean": statistics.mean(masked),
               "min": min(masked), "max": max(masked),
               "share_passing": sum(v > config.check.threshold for v in masked) / len(masked),
               "mean_shuffled": statistics.mean(shuffled)}
        report["sets"][name] = row
        print(f"| {name} | {row['recordings']} | {row['mean']:.3f} | {row['min']:.3f} | {row['max']:.3f} "
              f"| {row['share_passing']:.2f} | {row['mean_shuffled']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
