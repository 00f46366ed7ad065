#!/usr/bin/env python3
"""Copy the demo models made by scripts/train_demo.sh into the package, with model cards.

    runs/demo-pretrain  ->  w2v_cli/assets/models/demo-pretrain   (`--model demo-pretrain`)
    runs/demo           ->  w2v_cli/assets/models/demo            (`--model demo`)

Only inference files are copied (no optimizer state). Every figure in the cards is read
from the files the recipe wrote (eval summaries, pretrain-check JSON, trainer state), so a
card never states a number nobody measured. Fails if a model folder is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "w2v_cli" / "assets" / "models"
FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json",
         "tokenizer_config.json", "vocab.json", "special_tokens_map.json", "w2v_config.yaml")
MAX_BYTES = 25 * 1024 * 1024  # both checkpoints together, so the package stays small


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def copy_model(src: Path, dst: Path) -> int:
    if not (src / "model.safetensors").is_file():
        sys.exit(f"package_demo: {src} holds no model.safetensors; run scripts/train_demo.sh first")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    total = 0
    for name in FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            total += (dst / name).stat().st_size
    return total


def architecture(config: dict) -> str:
    params = (f"hidden {config['hidden_size']}, {config['num_hidden_layers']} layers, "
              f"{config['num_attention_heads']} heads, feed-forward {config['intermediate_size']}; "
              f"conv feature encoder {config['conv_dim']} channels, kernels {config['conv_kernel']}, "
              f"strides {config['conv_stride']} (20 ms frames)")
    return params


def count_params(folder: Path) -> int:
    import numpy as np
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "np") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())


def fmt(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def eval_row(name: str, summary: dict | None) -> str:
    if summary is None:
        return f"| {name} | not measured | | |"
    return (f"| {name} | {summary['wer']:.3f} | {summary['cer']:.3f} | {summary['utterances']} "
            f"({summary.get('audio_s', 0) / 60:.1f} min) |")


ATTRIBUTION = """## Data and attribution
Trained only on synthetic speech made by `scripts/make_synth_corpus.py`: the `hibari-tts`
package's bundled voice and `espeak-ng` voices reading LibriSpeech transcripts (LibriSpeech,
CC BY 4.0, (c) 2014 Vassil Panayotov; Panayotov et al., ICASSP 2015). Sentences whose ids are in
the project's shared real-speech set were left out; held-out sentences never occur in training.
"""

NOT_FOR = """## What it is not good for
Real human speech. It has heard two synthesizers and nothing else: no human voices, no
microphones or rooms, no accents beyond espeak-ng's. It exists so that `w2v` works out of the
box on a machine with no network, and so that the project's own pretraining and fine-tuning
are shown to work. For real transcription use `facebook/wav2vec2-base-960h` or a model
fine-tuned on your data.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    args = parser.parse_args()
    runs = Path(args.runs)
    size = copy_model(runs / "demo-pretrain", ASSETS / "demo-pretrain")
    size += copy_model(runs / "demo", ASSETS / "demo")
    if size > MAX_BYTES:
        sys.exit(f"package_demo: the two models take {size / 2**20:.1f} MB, over the 25 MB budget")

    pre_state = read_json(runs / "demo-pretrain" / "trainer_state.json") or {}
    check = read_json(runs / "demo-pretrain" / "pretrain-check.json")
    random_check = read_json(runs / "demo-pretrain" / "pretrain-check-random.json")
    fine_state = read_json(runs / "demo" / "trainer_state.json") or {}
    hibari = read_json(runs / "demo" / "eval-hibari" / "summary.json")
    espeak = read_json(runs / "demo" / "eval-espeak" / "summary.json")
    rnd_hibari = read_json(runs / "demo-random" / "eval-hibari" / "summary.json")
    rnd_espeak = read_json(runs / "demo-random" / "eval-espeak" / "summary.json")
    rnd_state = read_json(runs / "demo-random" / "trainer_state.json") or {}
    pre_config = read_json(ASSETS / "demo-pretrain" / "config.json")
    fine_config = read_json(ASSETS / "demo" / "config.json")

    check_text = "not measured"
    if check:
        check_text = (f"masked cosine similarity {check['cosine_masked']:.3f} "
                      f"({'PASS' if check['passed'] else 'FAIL'} at threshold {check['threshold']}); "
                      f"unmasked {fmt(check['cosine_unmasked'])}, shuffled targets {check['cosine_shuffled']:.3f}")
    if random_check:
        check_text += (f". A random model of the same architecture: {random_check['cosine_masked']:.3f} "
                       f"({'PASS' if random_check['passed'] else 'FAIL'})")
    (ASSETS / "demo-pretrain" / "README.md").write_text(f"""# demo-pretrain: a small wav2vec2 pretrained on synthetic English speech

`w2v pretrain-check --model demo-pretrain` and `w2v finetune` start from it; it is the
offline fallback of `w2v pretrain-check` when `patrickvonplaten/wav2vec2-base` is unavailable.

- Architecture: Wav2Vec2ForPreTraining, {architecture(pre_config)}; {count_params(ASSETS / 'demo-pretrain') / 1e6:.2f} M parameters.
- Recipe: `w2v pretrain --config configs/demo-pretrain.yaml` (scripts/train_demo.sh).
- Steps: {pre_state.get('step', '?')}, {pre_state.get('audio_s', 0) / 3600:.1f} h of audio seen,
  {pre_state.get('elapsed_s', 0) / 60:.0f} min on a shared 2-core CPU.
- `w2v pretrain-check --model demo-pretrain`: {check_text}.

{ATTRIBUTION}
{NOT_FOR}""")

    compare = ""
    if rnd_hibari or rnd_espeak:
        compare = f"""
## Pretraining vs. random initialisation (same fine-tuning steps and data)
| start | held-out WER, hibari | held-out WER, espeak-ng | steps |
| --- | --- | --- | --- |
| demo-pretrain | {fmt(hibari and hibari['wer'])} | {fmt(espeak and espeak['wer'])} | {fine_state.get('step', '?')} |
| random weights | {fmt(rnd_hibari and rnd_hibari['wer'])} | {fmt(rnd_espeak and rnd_espeak['wer'])} | {rnd_state.get('step', '?')} |
"""
    (ASSETS / "demo" / "README.md").write_text(f"""# demo: a small wav2vec2 CTC model for synthetic English speech

`w2v transcribe --model demo`; the offline fallback of `transcribe`, `eval`, `ctc-loss` and
`align` when `facebook/wav2vec2-base-960h` is neither cached nor downloadable.

- Architecture: Wav2Vec2ForCTC, {architecture(fine_config)}; {count_params(ASSETS / 'demo') / 1e6:.2f} M parameters; character vocabulary of {fine_config['vocab_size']} tokens
  (upper-case letters, apostrophe, `|` between words).
- Recipe: `w2v finetune --config configs/demo.yaml`, starting from `demo-pretrain`
  (scripts/train_demo.sh runs corpus, pretraining, fine-tuning, evaluation and packaging).
- Steps: {fine_state.get('step', '?')}, {fine_state.get('audio_s', 0) / 3600:.1f} h of audio seen,
  {fine_state.get('elapsed_s', 0) / 60:.0f} min on a shared 2-core CPU.

## Measured on held-out synthesized sentences (`w2v eval`, upper-case, punctuation removed)
| voice family | WER | CER | utterances |
| --- | --- | --- | --- |
{eval_row('hibari-tts (one neural voice, several speeds)', hibari)}
{eval_row('espeak-ng (several voices and variants)', espeak)}
{compare}
{ATTRIBUTION}
{NOT_FOR}""")
    print(f"packaged demo and demo-pretrain into {ASSETS} ({size / 2**20:.1f} MB)")


if __name__ == "__main__":
    main()
