#!/usr/bin/env bash
# The accuracy figures of the demo model quoted in the README, with the project's own
# commands, on the held-out synthesized sentences of scripts/make_synth_corpus.py:
#   - WER/CER per voice family, greedy vs beam vs beam + 4-gram LM (the LM is built from the
#     training split's transcripts only: held-out sentences never occur in it);
#   - greedy WER in fp32 vs bf16 (the engine's default dtype on bf16 CPUs);
#   - word-boundary error of `w2v align` (scripts/measure_alignment.py).
# Results go to runs/measure-demo/ (one eval folder each, summary.json inside) and a table
# on stdout. MODEL (default runs/demo) may be any CTC model folder or built-in name.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
W2V="$VENV/bin/w2v"
PY="$VENV/bin/python"
MODEL=${MODEL:-runs/demo}
OUT=${OUT:-runs/measure-demo}
mkdir -p "$OUT"

# LM text: the training split's transcripts (column "text" of data/synth/train.tsv)
"$PY" - "$OUT/train-text.txt" <<'PYEOF'
import csv, sys
with open("data/synth/train.tsv", newline="") as f, open(sys.argv[1], "w") as out:
    seen = set()
    for row in csv.DictReader(f, delimiter="\t"):
        if row["text"] not in seen:  # one line per sentence, not per voice
            seen.add(row["text"])
            out.write(row["text"] + "\n")
PYEOF
"$W2V" build-lm "$OUT/train-text.txt" -o "$OUT/train-4gram.arpa" --order 4 --case upper -q

run_eval() {  # name dataset [extra args...]
  local name=$1 dataset=$2
  shift 2
  "$W2V" eval --model "$MODEL" --dataset "$dataset" --set text.case=upper -o "$OUT/$name" -q "$@" > /dev/null
}
for family in hibari espeak; do
  data="data/synth/heldout_$family.tsv"
  run_eval "$family-greedy-fp32" "$data" --dtype fp32
  run_eval "$family-greedy-bf16" "$data" --dtype bf16
  run_eval "$family-beam" "$data" --dtype fp32 --decoder beam
  run_eval "$family-beam-lm" "$data" --dtype fp32 --lm "$OUT/train-4gram.arpa"
done

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| voices | decoding | dtype | WER | CER | utterances |")
print("| --- | --- | --- | --- | --- | --- |")
for family in ("hibari", "espeak"):
    for run, decoding, dtype in (("greedy-fp32", "greedy", "fp32"), ("greedy-bf16", "greedy", "bf16"),
                                 ("beam", "beam 100, no LM", "fp32"),
                                 ("beam-lm", "beam 100 + 4-gram LM (alpha 0.5, beta 1.5)", "fp32")):
        s = json.loads((out / f"{family}-{run}" / "summary.json").read_text())
        print(f"| {family} | {decoding} | {dtype} | {s['wer']:.3f} | {s['cer']:.3f} | {s['utterances']} |")
PYEOF

if command -v espeak-ng > /dev/null; then
  "$PY" scripts/measure_alignment.py --model "$MODEL" --recordings 40 --json "$OUT/alignment.json"
else
  echo "espeak-ng is not installed (bash scripts/install_tts.sh $VENV): alignment not measured" >&2
fi
