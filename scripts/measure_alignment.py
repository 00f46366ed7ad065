#!/usr/bin/env python3
"""Word-boundary accuracy of `w2v align` on recordings whose boundaries are known by
construction.

Each test recording is made of words (or short phrases) synthesized one at a time with
espeak-ng, trimmed to where the synthesized signal is, and joined with silences of known,
random length. The true start and end of every word are therefore exact (to a 5 ms
trimming window); the script aligns the known transcript with the given model and reports
the median and 90th-percentile absolute error of word starts and ends.

    bash scripts/install_tts.sh .venv             # espeak-ng (apt)
    .venv/bin/python scripts/measure_alignment.py --model facebook/wav2vec2-base-960h
    .venv/bin/python scripts/measure_alignment.py --model ./runs/demo --recordings 40 --json out.json

The figures mean something only for a trained model: a random or barely trained model has
no idea where words are, and its boundaries are noise. CTC emissions are spiky, so even a
good model puts word starts a little late and word ends early; the silences between words
here are long enough that the error of each boundary is measured on its own.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_RATE = 16000  # Hz, the model's
TRIM_WINDOW_S = 0.005  # the energy window used to find where a synthesized word starts and ends
TRIM_THRESHOLD = 0.02  # of the word's peak absolute amplitude
WORDS = """time people year way day thing man world life hand part child eye woman place work week
case point number group problem fact house water money story night river morning garden window
letter mother father doctor summer winter table paper voice music market island village forest
station question answer evening friend city country picture kitchen silver yellow purple""".split()
PHRASES = ["good morning", "thank you", "on the table", "in the garden", "very well", "at night",
           "the old man", "a cup of tea", "over there", "right now"]


def synthesize(text: str, voice: str, speed: int) -> np.ndarray:
    """espeak-ng speech for `text`, float32 mono at SAMPLE_RATE, trimmed to the signal."""
    import soxr

    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)
    window = int(TRIM_WINDOW_S * SAMPLE_RATE)
    frames = len(samples) // window
    energy = np.abs(samples[: frames * window]).reshape(frames, window).max(axis=1)
    loud = np.flatnonzero(energy > TRIM_THRESHOLD * energy.max())
    return samples[loud[0] * window:(loud[-1] + 1) * window]


def make_recording(rng: np.random.Generator, pieces: list[str], voice: str, speed: int,
                   silence_s: tuple[float, float]) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Pieces joined with random silences (and the same before and after); returns the
    samples and each word's true (word, start_s, end_s). A phrase's words share its span, so
    only its first word's start and last word's end are known: those are the ones kept."""
    parts = [np.zeros(int(rng.uniform(*silence_s) * SAMPLE_RATE), np.float32)]
    truth: list[tuple[str, float, float]] = []
    t = len(parts[0])
    for piece in pieces:
        audio = synthesize(piece, voice, speed)
        truth.append((piece, t / SAMPLE_RATE, (t + len(audio)) / SAMPLE_RATE))
        gap = np.zeros(int(rng.uniform(*silence_s) * SAMPLE_RATE), np.float32)
        parts += [audio, gap]
        t += len(audio) + len(gap)
    samples = np.concatenate(parts)
    samples += rng.normal(0, 1e-4, len(samples)).astype(np.float32)  # no digital silence
    return samples, truth


def piece_spans(words: list[dict], pieces: list[str]) -> list[tuple[float, float]]:
    """(start of a piece's first word, end of its last word) from aligned words."""
    spans, i = [], 0
    for piece in pieces:
        n = len(piece.split())
        spans.append((words[i]["start"], words[i + n - 1]["end"]))
        i += n
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", required=True, help="CTC model: hub id, folder or built-in name")
    parser.add_argument("--recordings", type=int, default=20, help="test recordings to make")
    parser.add_argument("--pieces", type=int, default=6, help="words or phrases per recording")
    parser.add_argument("--phrase-share", type=float, default=0.3, help="share of pieces that are phrases")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice")
    parser.add_argument("--speed", type=int, default=150, help="espeak-ng words per minute")
    parser.add_argument("--silence", type=float, nargs=2, default=(0.3, 0.8), metavar=("MIN_S", "MAX_S"),
                        help="range of the silences between pieces, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every boundary and the summary here")
    parser.add_argument("--keep", type=Path, help="keep the test recordings (WAV) in this folder")
    args = parser.parse_args()

    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed: run `bash scripts/install_tts.sh .venv`")
    from w2v_cli.align import align_sources
    from w2v_cli.config import InferenceConfig
    from w2v_cli.inference import array_source
    from w2v_cli.models import load_ctc_model

    rng = np.random.default_rng(args.seed)
    loaded = load_ctc_model(args.model, device="auto")
    items, truths, pieces_of = [], [], []
    for n in range(args.recordings):
        pieces = [str(rng.choice(PHRASES)) if rng.random() < args.phrase_share else str(rng.choice(WORDS))
                  for _ in range(args.pieces)]
        samples, truth = make_recording(rng, pieces, args.voice, args.speed, tuple(args.silence))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            sf.write(args.keep / f"rec{n:03d}.wav", samples, SAMPLE_RATE)
        items.append((array_source(f"rec{n:03d}", samples, SAMPLE_RATE), " ".join(pieces)))
        truths.append(truth)
        pieces_of.append(pieces)

    rows = []
    for result, truth, pieces in zip(align_sources(loaded, items, InferenceConfig(progress=False)), truths, pieces_of):
        if isinstance(result, tuple):
            print(f"error: {result[0]}: {result[1]}", file=sys.stderr)
            continue
        words = result.record(loaded.name)["words"]
        for (piece, start, end), (got_start, got_end) in zip(truth, piece_spans(words, pieces)):
            rows.append({"recording": result.key, "piece": piece, "start": start, "end": end,
                         "aligned_start": got_start, "aligned_end": got_end})
    if not rows:
        sys.exit("nothing was aligned")
    start_err = np.array([1000 * abs(r["aligned_start"] - r["start"]) for r in rows])  # ms
    end_err = np.array([1000 * abs(r["aligned_end"] - r["end"]) for r in rows])  # ms
    both = np.concatenate([start_err, end_err])
    summary = {"model": args.model, "recordings": args.recordings, "boundaries": int(len(both)),
               "voice": args.voice, "speed": args.speed, "seed": args.seed}
    print(f"model {args.model}: {len(rows)} pieces in {args.recordings} recordings, espeak-ng {args.voice}")
    print(f"{'boundary':<10} {'median ms':>10} {'p90 ms':>8} {'<=20 ms':>8} {'<=50 ms':>8} {'<=100 ms':>9}")
    for name, err in (("start", start_err), ("end", end_err), ("both", both)):
        stats = {"median_ms": float(np.median(err)), "p90_ms": float(np.percentile(err, 90)),
                 **{f"within_{k}ms": float(np.mean(err <= k)) for k in (20, 50, 100)}}
        summary[name] = stats
        print(f"{name:<10} {stats['median_ms']:>10.1f} {stats['p90_ms']:>8.1f} {stats['within_20ms']:>8.0%} "
              f"{stats['within_50ms']:>8.0%} {stats['within_100ms']:>9.0%}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "pieces": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
