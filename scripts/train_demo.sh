#!/usr/bin/env bash
# The demo models, end to end, with the project's own commands only:
#   1. synthesize the English corpus (hibari-tts + espeak-ng speaking LibriSpeech text):
#      data/synth (sentences of at most 30 words; stages 1-3) and data/synth-split (the same
#      held-out split; the longer sentences cut into pieces for training too; stage 4) and
#      data/synth-wordnet (those spoken twice, plus WordNet's usage examples; stages 5 and 6);
#      data/synth-dev (WordNet's definitions, a development set for the LM's weights)
#   2. w2v pretrain   -> runs/demo-pretrain   (contrastive pretraining from scratch)
#   3. w2v finetune   -> runs/demo-stage1     (CTC fine-tuning from that checkpoint, 3,000 steps)
#                     -> runs/demo-stage2     (trained on from stage 1, 4,000 steps)
#                     -> runs/demo-stage3     (trained on from stage 2, 8,000 steps)
#                     -> runs/demo-stage4     (from stage 3 on data/synth-split, 6,500 steps)
#                     -> runs/demo-stage5     (from stage 4 on data/synth-wordnet, 6,000 steps)
#                     -> runs/demo            (from stage 5, same corpus: no dropout, frozen
#                                              feature encoder, bf16; 12,000 steps)
#   4. w2v pretrain-check (one recording, then held-out sets, against a random model);
#      w2v eval of stage 1 per voice family; scripts/measure_demo.sh for the final model
#      (greedy/beam/LM, fp32/bf16, alignment; the LM's weights tuned on data/synth-dev)
#   5. stage 1 from random weights, for comparison with stage 1 (COMPARE=1)
#   6. scripts/package_demo.py copies both models into w2v_cli/assets/models with cards
# Idempotent and resumable: every step resumes from its checkpoints when rerun.
# Knobs: HOURS (corpus size), PRETRAIN_STEPS, FINETUNE_STEPS (stage 1), STAGE2_STEPS, STAGE3_STEPS,
# STAGE4_STEPS, STAGE5_STEPS, STAGE6_STEPS, COMPARE=0|1. Measured on the shared 2-core CPU: pretraining 23 min, stage 1 28 min, stage 2
# 36 min; the later stages are in the demo model's card (w2v_cli/assets/models/demo/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
W2V="$VENV/bin/w2v"
PY="$VENV/bin/python"
HOURS=${HOURS:-6}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-2000}
FINETUNE_STEPS=${FINETUNE_STEPS:-3000}
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

"$W2V" pretrain --config configs/demo-pretrain.yaml --max-steps "$PRETRAIN_STEPS"
# pretrain-check on the bundled synthesized example (the model's domain) and on the bundled
# LibriSpeech recording (real speech, which it never heard); then a random model of the
# same architecture (the control: it must fail)
SYNTH_AUDIO=w2v_cli/assets/audio/synth-hibari-4350-9170-0007.flac
REAL_AUDIO=w2v_cli/assets/audio/librispeech-1272-128104-0000.flac
"$W2V" pretrain-check --model runs/demo-pretrain --audio "$SYNTH_AUDIO" --json > runs/demo-pretrain/pretrain-check.json || true
"$W2V" pretrain-check --model runs/demo-pretrain --audio "$REAL_AUDIO" --json > runs/demo-pretrain/pretrain-check-real.json || true
"$PY" - <<'PYEOF'
from w2v_cli.config import load_config
from w2v_cli.pretrain import build_pretraining_model
model, feature_extractor = build_pretraining_model(load_config("configs/demo-pretrain.yaml"))
model.save_pretrained("runs/demo-pretrain-random")
feature_extractor.save_pretrained("runs/demo-pretrain-random")
PYEOF
"$W2V" pretrain-check --model runs/demo-pretrain-random --audio "$SYNTH_AUDIO" --json \
  > runs/demo-pretrain/pretrain-check-random.json || true
for model in demo-pretrain demo-pretrain-random; do
  "$PY" scripts/pretrain_check_set.py --model "runs/$model" --max-items 30 \
    --set hibari=data/synth/heldout_hibari.tsv --set espeak=data/synth/heldout_espeak.tsv \
    --set real=../shared/data/speech/manifest.tsv \
    --json "runs/demo-pretrain/pretrain-check-sets${model#demo-pretrain}.json"
done

eval_families() {  # run: greedy fp32 WER/CER per voice family into runs/<run>/eval-<family>
  for family in hibari espeak; do
    "$W2V" eval --model "runs/$1" --dataset "data/synth/heldout_$family.tsv" --set text.case=upper \
      --dtype fp32 --decoder greedy --output-dir "runs/$1/eval-$family" -q
  done
}
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
"$PY" scripts/package_demo.py
