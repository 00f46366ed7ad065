#!/usr/bin/env bash
# The demo models, end to end, with the project's own commands only. Two recipes share the corpus:
#
# RECIPE=two-hour (the default; the bundled models since 2026-12-03; see README "The demo models"):
#   about two hours of training on a 2-core CPU (1.8 h measured 2026-12-04: run 7, the bundled models;
#   2.5 h for run 6 on a slower day before float32 denormals were flushed)
#   1. synthesize the English corpus (below)
#   2. w2v pretrain   -> runs/demo-2h-pretrain  (configs/demo-2h-pretrain.yaml: contrastive
#                                                pretraining from scratch, 2,000 steps)
#   3. w2v finetune   -> runs/demo-2h-lr3       (configs/demo-2h-lr3.yaml: CTC fine-tuning from that
#                                                checkpoint in one stage on data/synth-wordnet,
#                                                20,000 steps at peak lr 3e-3)
#   4. w2v pretrain-check (one recording, then held-out sets, against a random model);
#      scripts/measure_demo.sh for the final model (greedy/beam/LM, fp32/bf16, alignment; the LM's
#      weights tuned on data/synth-dev) -> runs/measure-demo-2h-lr3
#   5. (COMPARE=1, the default; COMPARE=0 skips it: 1.5-1.8 h more) the same fine-tuning from random
#      weights (configs/demo-2h-random.yaml), the same schedule, all its steps unless STOP_AFTER cuts
#      it short -> runs/demo-2h-random; the card compares the two runs' heldout_small WER at the steps
#      both evaluated, and their held-out WER per voice family (greedy, and with the same LM)
#   6. scripts/package_demo.py --recipe two-hour copies both models into w2v_cli/assets/models
#
# RECIPE=six-stage (the bundled models until 2026-12-03; ~5.6 h): configs/demo-pretrain.yaml, then
#   six fine-tuning stages, configs/demo-stage1..5.yaml and configs/demo.yaml -> runs/demo; stage 1
#   from random weights for comparison (configs/demo-random.yaml); scripts/package_demo.py
#   --recipe six-stage.
#
# The corpus (both recipes): data/synth (hibari-tts + espeak-ng speaking LibriSpeech text,
# sentences of at most 30 words), data/synth-split (the same held-out split; the longer sentences
# cut into pieces for training too), data/synth-wordnet (those spoken twice, plus WordNet's usage
# examples), data/synth-dev (WordNet's definitions, a development set for the LM's weights).
# Idempotent and resumable: every step resumes from its checkpoints when rerun.
# Knobs: RECIPE, HOURS (corpus size), PRETRAIN_STEPS, COMPARE=0|1; two-hour: FINETUNE_STEPS,
# STOP_AFTER; six-stage: FINETUNE_STEPS (stage 1), STAGE2_STEPS ... STAGE6_STEPS. Training times
# are in the models' cards (w2v_cli/assets/models/*/README.md) and the configs' comments.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
W2V="$VENV/bin/w2v"
PY="$VENV/bin/python"
RECIPE=${RECIPE:-two-hour}
HOURS=${HOURS:-6}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-2000}
case "$RECIPE" in
  two-hour) FINETUNE_STEPS=${FINETUNE_STEPS:-20000}; STOP_AFTER=${STOP_AFTER:-$FINETUNE_STEPS}
            PRETRAIN_CONFIG=configs/demo-2h-pretrain.yaml; PRE=runs/demo-2h-pretrain ;;
  six-stage) FINETUNE_STEPS=${FINETUNE_STEPS:-3000}
             PRETRAIN_CONFIG=configs/demo-pretrain.yaml; PRE=runs/demo-pretrain ;;
  *) echo "train_demo: RECIPE must be two-hour or six-stage, not '$RECIPE'" >&2; exit 2 ;;
esac
STAGE2_STEPS=${STAGE2_STEPS:-4000}
STAGE3_STEPS=${STAGE3_STEPS:-8000}
STAGE4_STEPS=${STAGE4_STEPS:-6500}
STAGE5_STEPS=${STAGE5_STEPS:-6000}
STAGE6_STEPS=${STAGE6_STEPS:-12000}
COMPARE=${COMPARE:-1}

bash scripts/install_tts.sh "$VENV"  # also Debian's wordnet-base, for stages 5 and 6's extra text
"$PY" scripts/make_synth_corpus.py --out data/synth --hours "$HOURS" --jobs 2
# a small held-out set for evaluation during training: 40 sentences per voice family
{ head -41 data/synth/heldout_hibari.tsv; tail -n +2 data/synth/heldout_espeak.tsv | head -40; } > data/synth/heldout_small.tsv
# every train sentence once, the long ones in pieces (~8.7 h; the renditions already in
# data/synth are reused through hard links, not synthesized again)
if [ ! -d data/synth-split/audio ]; then mkdir -p data/synth-split && cp -al data/synth/audio data/synth-split/audio; fi
"$PY" scripts/make_synth_corpus.py --out data/synth-split --long-sentences split --passes 1 --jobs 2
# stages 5 and 6: data/synth-split's sentences twice (the first rendition is data/synth-split's own,
# reused) plus WordNet's usage examples once (train only; held-out unchanged)
"$PY" scripts/wordnet_text.py --out data/text-extra/wordnet_examples.tsv
if [ ! -d data/synth-wordnet/audio ]; then mkdir -p data/synth-wordnet && cp -al data/synth-split/audio data/synth-wordnet/audio; fi
"$PY" scripts/make_synth_corpus.py --out data/synth-wordnet --long-sentences split --passes 2 \
  --extra-text data/text-extra/wordnet_examples.tsv --extra-passes 1 --jobs 2
# development set for the LM's weights (scripts/tune_lm.py via measure_demo.sh): ~150 WordNet
# definitions, each spoken by both voice families (the "held-out" files of this corpus; its
# few train files are not used). Definitions are in neither the training text nor the LM's.
"$PY" scripts/wordnet_text.py --what glosses --min-words 6 --out data/text-extra/wordnet_glosses.tsv
"$PY" scripts/make_synth_corpus.py --out data/synth-dev --text data/text-extra/wordnet_glosses.tsv \
  --max-sentences 300 --heldout-frac 0.49 --passes 1 --hours 0.01 --jobs 2

"$W2V" pretrain --config "$PRETRAIN_CONFIG" --max-steps "$PRETRAIN_STEPS"
# pretrain-check on the bundled synthesized example (the model's domain) and on the bundled
# LibriSpeech recording (real speech, which it never heard); then a random model of the
# same architecture (the control: it must fail)
SYNTH_AUDIO=w2v_cli/assets/audio/synth-hibari-4350-9170-0007.flac
REAL_AUDIO=w2v_cli/assets/audio/librispeech-1272-128104-0000.flac
"$W2V" pretrain-check --model "$PRE" --audio "$SYNTH_AUDIO" --json > "$PRE/pretrain-check.json" || true
"$W2V" pretrain-check --model "$PRE" --audio "$REAL_AUDIO" --json > "$PRE/pretrain-check-real.json" || true
"$PY" - "$PRETRAIN_CONFIG" "$PRE-random" <<'PYEOF'
import sys
from w2v_cli.config import load_config
from w2v_cli.pretrain import build_pretraining_model
model, feature_extractor = build_pretraining_model(load_config(sys.argv[1]))
model.save_pretrained(sys.argv[2])
feature_extractor.save_pretrained(sys.argv[2])
PYEOF
"$W2V" pretrain-check --model "$PRE-random" --audio "$SYNTH_AUDIO" --json > "$PRE/pretrain-check-random.json" || true
for model in "$PRE" "$PRE-random"; do
  "$PY" scripts/pretrain_check_set.py --model "$model" --max-items 30 \
    --set hibari=data/synth/heldout_hibari.tsv --set espeak=data/synth/heldout_espeak.tsv \
    --set real=../shared/data/speech/manifest.tsv \
    --json "$PRE/pretrain-check-sets${model#"$PRE"}.json"
done

eval_families() {  # run [suffix eval-args...]: fp32 WER/CER per voice family into runs/<run>/eval-<family><suffix>;
                   # greedy without eval-args
  local run=$1 suffix=${2:-}
  local args=("${@:3}")
  [ ${#args[@]} -gt 0 ] || args=(--decoder greedy)
  for family in hibari espeak; do
    "$W2V" eval --model "runs/$run" --dataset "data/synth/heldout_$family.tsv" --set text.case=upper \
      --dtype fp32 "${args[@]}" --output-dir "runs/$run/eval-$family$suffix" -q
  done
}
if [ "$RECIPE" = two-hour ]; then
  "$W2V" finetune --config configs/demo-2h-lr3.yaml --max-steps "$FINETUNE_STEPS"
  MODEL=runs/demo-2h-lr3 OUT=runs/measure-demo-2h-lr3 bash scripts/measure_demo.sh  # the final model's figures
  if [ "$COMPARE" = 1 ]; then
    # The same fine-tuning (schedule, data, seed) from random weights, stopped after STOP_AFTER steps
    # (by default all of them), then held out as the final model is: greedy fp32 per voice family,
    # and with the final model's LM and weights (the same LM for both, so only the acoustic model differs)
    "$W2V" finetune --config configs/demo-2h-random.yaml --max-steps "$FINETUNE_STEPS" --stop-after "$STOP_AFTER"
    eval_families demo-2h-random
    M=runs/measure-demo-2h-lr3
    lm_attr() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$M/attrs.json" "$1"; }
    eval_families demo-2h-random -lm --lm "$M/train-3gram.arpa" --alpha "$(lm_attr alpha)" \
      --beta "$(lm_attr beta)" --token-min-logp "$(lm_attr token_min_logp)"
  fi
  "$PY" scripts/package_demo.py --recipe two-hour
  exit 0
fi

"$W2V" finetune --config configs/demo-stage1.yaml --max-steps "$FINETUNE_STEPS"
eval_families demo-stage1
"$W2V" finetune --config configs/demo-stage2.yaml --max-steps "$STAGE2_STEPS"
"$W2V" finetune --config configs/demo-stage3.yaml --max-steps "$STAGE3_STEPS"
eval_families demo-stage3
"$W2V" finetune --config configs/demo-stage4.yaml --max-steps "$STAGE4_STEPS"
eval_families demo-stage4
"$W2V" finetune --config configs/demo-stage5.yaml --max-steps "$STAGE5_STEPS"
eval_families demo-stage5  # the card compares stage 6 with it
"$W2V" finetune --config configs/demo.yaml --max-steps "$STAGE6_STEPS"
MODEL=runs/demo OUT=runs/measure-demo bash scripts/measure_demo.sh  # the final model's figures

if [ "$COMPARE" = 1 ]; then
  # Stage 1's fine-tuning, same steps, from random weights of the same architecture.
  "$W2V" finetune --config configs/demo-random.yaml --max-steps "$FINETUNE_STEPS"
  eval_families demo-random
fi
"$PY" scripts/package_demo.py --recipe six-stage
