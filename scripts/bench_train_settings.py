#!/usr/bin/env python
"""What the training settings cost on this machine: `w2v finetune` step by step, in one run.

    .venv/bin/python scripts/bench_train_settings.py              # ~2 min on 2 cores
    .venv/bin/python scripts/bench_train_settings.py --model runs/demo-stage5 --steps 60

Runs the real CLI (`w2v finetune`, one whole process per row) on the same model, data, batch
size, learning rate and seed, changing one setting per row on top of the row before:

1. the six-stage demo recipe's stages 1-5: fp32, the model's own dropouts (0.05), feature encoder
   trained, float32 denormals computed as they are (`train.flush_denormal=false`);
2. + denormals flushed to zero (`train.flush_denormal=true`, the default since 2026-12-03);
3. + bf16 mixed precision (`train.dtype=bf16`);
4. + no dropout (`train.dropout=0`): with attention dropout, torch's scaled_dot_product_attention
   takes its unfused math path on a CPU; without it, the fused flash kernel;
5. + frozen feature encoder (`train.freeze_feature_encoder=true`): the six-stage recipe's stage 6.

`--rows 1,2` runs only those rows (each still with the settings of the rows before it): on a CPU
without bf16 instructions bf16 is emulated and rows 3-5 measure little but that.

Columns: training rate in audio seconds per second, from the run's train_log.jsonl after its
first logged window (start-up, model loading and the first steps' allocations left out);
its ratio to row 1 measured in the same run; the last logged loss. With --repeats the rows
alternate and each keeps its fastest run. The data: the real recordings of
../shared/data/speech up to 16 s, written once as 16 kHz FLAC into a temporary folder first
(so no row spends its time resampling 22-48 kHz audio), batches of 30 s of audio.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = ROOT.parent / "shared" / "data" / "speech" / "manifest.tsv"
STEPS = (  # each row adds its setting to those of the rows before it
    ("fp32, dropout as the model has it, encoder trained, denormals computed", "train.flush_denormal=false"),
    ("+ denormals flushed to zero", "train.flush_denormal=true"),  # a later --set wins
    ("+ bf16 mixed precision", "train.dtype=bf16"),
    ("+ dropout 0", "train.dropout=0"),
    ("+ feature encoder frozen", "train.freeze_feature_encoder=true"),
)
ROWS = tuple((name, [s for _, s in STEPS[: i + 1] if s]) for i, (name, _) in enumerate(STEPS))


def prepare_data(manifest: Path, work: Path) -> Path:
    """The manifest's recordings of at most 16 s as 16 kHz FLAC, with a manifest of their own."""
    import soundfile as sf

    sys.path.insert(0, str(ROOT))
    from w2v_cli.audio import load_audio

    (work / "audio").mkdir(parents=True)
    out = work / "train.tsv"
    with open(manifest, newline="", encoding="utf-8") as f, open(out, "w", encoding="utf-8") as dst:
        dst.write("id\tpath\ttext\n")
        for row in csv.DictReader(f, delimiter="\t"):
            audio = load_audio(manifest.parent / row["path"])
            if len(audio) > 16 * 16000:
                continue
            sf.write(work / "audio" / f"{row['id']}.flac", audio, 16000)
            dst.write(f"{row['id']}\taudio/{row['id']}.flac\t{row['text']}\n")
    return out


def run_row(settings: list[str], args: argparse.Namespace, out: Path) -> dict:
    common = [f"model.name={args.model}", f"data.train={args.data}", "data.max_duration_s=16",
              "text.case=upper", f"train.output_dir={out}", f"train.max_steps={args.steps}",
              "train.batch_audio_s=30", "train.learning_rate=1e-4", "train.warmup_steps=5",
              "train.freeze_feature_encoder=false", "train.log_every=10", "train.eval_every=0",
              "train.save_every=0", "train.keep_last=0", "train.seed=0"]
    command = [str(Path(sys.executable).parent / "w2v"), "finetune", "-q"]
    for item in common + settings:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_train_settings: w2v finetune failed ({' '.join(settings) or 'row 1'}):\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    if len(rows) < 2:
        sys.exit("bench_train_settings: fewer than two logged windows; raise --steps")
    later = rows[1:]  # the first window holds the first steps' one-off costs
    seconds = later[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    audio = sum(r["audio_s_per_s"] * (r["elapsed_s"] - p["elapsed_s"]) for p, r in zip(rows, later))
    return {"rate": audio / seconds, "loss": rows[-1]["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help="a CTC model folder or built-in name (default demo)")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per row (default 40)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per row, alternating; the fastest is kept")
    parser.add_argument("--rows", default="", help="comma-separated row numbers to run (default all)")
    args = parser.parse_args()
    try:
        rows = sorted({int(r) - 1 for r in args.rows.split(",") if r.strip()}) or list(range(len(ROWS)))
    except ValueError:
        sys.exit(f"bench_train_settings: --rows takes row numbers such as 1,2, not {args.rows!r}")
    if not all(0 <= r < len(ROWS) for r in rows):
        sys.exit(f"bench_train_settings: --rows: rows are 1 to {len(ROWS)}")
    if not args.manifest.is_file():
        sys.exit(f"bench_train_settings: no manifest {args.manifest}; pass --manifest")
    best: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="w2v-bench-train-") as work:
        args.data = prepare_data(args.manifest, Path(work) / "data")
        for repeat in range(args.repeats):
            for i in rows:
                name, settings = ROWS[i]
                result = run_row(settings, args, Path(work) / f"row{i}-{repeat}")
                print(f"[{repeat + 1}/{args.repeats}] {name}: {result['rate']:.1f} audio-s/s", file=sys.stderr)
                if i not in best or result["rate"] > best[i]["rate"]:
                    best[i] = result
    print(f"model {args.model}, {args.steps} steps per row, batches of 30 s, {args.manifest}")
    first = rows[0]
    print(f"| settings | audio-s/s | ratio to row {first + 1} | last loss |")
    print("| --- | --- | --- | --- |")
    for i in rows:
        print(f"| {i + 1}. {ROWS[i][0]} | {best[i]['rate']:.1f} | {best[i]['rate'] / best[first]['rate']:.2f} | "
              f"{best[i]['loss']:.3f} |")


if __name__ == "__main__":
    main()
