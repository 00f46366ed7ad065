#!/usr/bin/env python
"""Pick the n-gram LM's weights (alpha: LM weight, beta: word bonus) and, with
--token-min-logp, beam search's per-frame pruning threshold on a development set, by WER
over a grid.

The model runs once (fp32) and keeps every utterance's log-probs; each (alpha, beta,
token_min_logp) point is then a beam search only (pyctcdecode's reset_params on a decoder
built once), one point per worker process. Prints a table (stdout) and the best point;
--attrs writes it as the attrs.json that a model folder's language_model/ ships beside the LM
(w2v_cli.decoding reads alpha, beta and token_min_logp from it).

Tune on sentences that are in neither the LM's text nor the test set: the demo recipe uses
WordNet definitions (data/synth-dev, scripts/train_demo.sh), never the held-out split.

    python scripts/tune_lm.py --model runs/demo --lm runs/measure-demo/train-3gram.arpa \\
        --dataset data/synth-dev/heldout_hibari.tsv --dataset data/synth-dev/heldout_espeak.tsv \\
        --attrs runs/measure-demo/attrs.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from pathlib import Path

import numpy as np

from w2v_cli.config import load_config
from w2v_cli.data import load_dataset
from w2v_cli.decoding import BeamDecoder, BeamOptions
from w2v_cli.errors import W2VError
from w2v_cli.evaluate import score_utterance
from w2v_cli.inference import AudioSource, transcribe_sources
from w2v_cli.models import load_ctc_model
from w2v_cli.text import normalize_text
from w2v_cli.writers import write_atomic

# Set in the parent before the workers fork: the decoder (with its loaded LM), the log-probs
# and the normalised references, so that nothing large is pickled per task.
_STATE: dict = {}


def _decode_point(point: tuple[float, float, float]) -> tuple[float, float, float, list[tuple[int, int, int, int]]]:
    """Beam-decode every utterance at (alpha, beta, token_min_logp): per utterance (word
    errors, reference words, char errors, reference chars)."""
    alpha, beta, token_min_logp = point
    decoder, items, text_cfg = _STATE["decoder"], _STATE["items"], _STATE["text"]
    decoder.decoder.reset_params(alpha=alpha, beta=beta)
    decoder.options.token_min_logp = token_min_logp
    counts = []
    for uid, reference, log_probs in items:
        hypothesis = normalize_text(decoder.decode(log_probs).text, text_cfg)
        s = score_utterance(uid, reference, hypothesis)
        counts.append((s.word_errors, s.hits + s.substitutions + s.deletions, s.char_errors, s.reference_chars))
    return alpha, beta, token_min_logp, counts


def floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


NUMBER_LIST = re.compile(r"^-[\d.]+(,-?[\d.]+)*$")
LIST_OPTIONS = ("--alpha", "--beta", "--token-min-logp")


def glue_negative_lists(argv: list[str]) -> list[str]:
    """`--token-min-logp -5,-8` as `--token-min-logp=-5,-8`: argparse takes a separate value that
    starts with '-' and is not one plain negative number (-5,-8 is not) for an option, and fails
    with "expected one argument"."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in LIST_OPTIONS and NUMBER_LIST.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="CTC model folder or built-in name")
    p.add_argument("--lm", required=True, help="ARPA (plain or .gz) or KenLM binary")
    p.add_argument("--dataset", action="append", required=True, help="development set (repeatable)")
    p.add_argument("--alpha", type=floats, default=floats("0.3,0.4,0.5,0.6,0.75,1.0,1.5,2.0"))
    p.add_argument("--beta", type=floats, default=floats("0,0.5,1.0,1.5,2.5"))
    p.add_argument("--token-min-logp", type=floats, default=floats("-5"),
                   help="pyctcdecode's per-frame threshold(s) to try (default -5, its own; the demo "
                        "recipe tries -5,-8: its small model is unsure of its characters)")
    p.add_argument("--beam-width", type=int, default=100)
    p.add_argument("--case", default="upper", help="text.case for scoring (as w2v eval --set text.case=)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for the grid")
    p.add_argument("--attrs", type=Path, help="write the best point as attrs.json here")
    p.add_argument("--json", type=Path, help="write the whole grid as JSON here")
    a = p.parse_args(glue_negative_lists(sys.argv[1:]))
    if any(t > 0 for t in a.token_min_logp):
        p.error("--token-min-logp: log-probabilities are 0 or below")
    try:
        config = load_config(overrides=[f"text.case={a.case}"])
        loaded = load_ctc_model(a.model, device="cpu", dtype="fp32")
        items = []
        started = time.perf_counter()
        for spec in a.dataset:
            dataset = load_dataset(spec, config.data)
            if dataset.skipped:
                print(f"tune_lm: {spec}: {len(dataset.skipped)} items skipped", file=sys.stderr)
            sr = loaded.sample_rate
            sources = [AudioSource(u.id, (lambda u=u: u.blocks(sr)), u.duration_s) for u in dataset.utterances]
            for utt, result in zip(dataset.utterances, transcribe_sources(loaded, sources, config.inference, True)):
                if result.error is not None:
                    print(f"tune_lm: {utt.id}: {result.error}", file=sys.stderr)
                    continue
                reference = normalize_text(utt.text, config.text)
                if reference:
                    items.append((f"{spec}:{utt.id}", reference, np.asarray(result.log_probs, np.float32)))
        if not items:
            raise W2VError("no utterance of the development set could be transcribed")
        print(f"tune_lm: {len(items)} utterances, log-probs in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        options = BeamOptions(beam_width=a.beam_width, lm_path=a.lm)
        _STATE.update(decoder=BeamDecoder(loaded.processor.tokenizer, loaded.model.config.vocab_size, options),
                      items=items, text=config.text)
    except W2VError as e:
        print(f"tune_lm: {e}", file=sys.stderr)
        return 1

    points = [(al, be, t) for t in a.token_min_logp for al in a.alpha for be in a.beta]
    started = time.perf_counter()
    ctx = multiprocessing.get_context("fork")  # the workers inherit _STATE
    with ctx.Pool(max(1, a.jobs)) as pool:
        results = list(pool.imap(_decode_point, points))
    grid = []
    for alpha, beta, token_min_logp, counts in results:
        c = np.asarray(counts, dtype=np.int64).sum(axis=0)
        grid.append({"alpha": alpha, "beta": beta, "token_min_logp": token_min_logp, "wer": c[0] / max(1, c[1]),
                     "cer": c[2] / max(1, c[3]), "utterances": len(counts)})
    print(f"tune_lm: {len(points)} points in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print("| alpha | beta | token_min_logp | WER | CER |")
    print("| --- | --- | --- | --- | --- |")
    for g in grid:
        print(f"| {g['alpha']:g} | {g['beta']:g} | {g['token_min_logp']:g} | {g['wer']:.4f} | {g['cer']:.4f} |")
    best = min(grid, key=lambda g: (g["wer"], g["cer"]))
    print(f"best: alpha {best['alpha']:g}, beta {best['beta']:g}, token_min_logp {best['token_min_logp']:g}: "
          f"WER {best['wer']:.4f}, CER {best['cer']:.4f} ({best['utterances']} utterances)")
    if a.json:
        write_atomic(a.json, json.dumps({"model": a.model, "lm": a.lm, "datasets": a.dataset,
                                         "beam_width": a.beam_width, "grid": grid, "best": best}, indent=1) + "\n")
    if a.attrs:
        write_atomic(a.attrs, json.dumps({key: best[key] for key in ("alpha", "beta", "token_min_logp")},
                                         indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
