#!/usr/bin/env python
"""Benchmark `w2v transcribe` against the transformers ASR pipeline, in one run.

    .venv/bin/python scripts/bench_transcribe.py            # the README's table (~15 min, 2 cores)
    .venv/bin/python scripts/bench_transcribe.py --pipeline-batch-sizes 1 --workloads files

Workloads: the recordings in ../shared/data/speech/audio (79 files, 8.8 min, 16-48 kHz)
and one 10-minute recording joined from them (16 kHz FLAC). Model: the wav2vec2-base-960h
architecture (``Wav2Vec2Config()`` defaults) with random weights -- speed does not depend
on the weights' values -- saved with a character processor. Systems, each a whole process
(interpreter start-up, imports, model loading and audio decoding included):

- the transformers ASR pipeline with its chunking recipe (chunk_length_s 20, stride 3 s on
  each side, as w2v's defaults) at batch_size 1, 4 and 8; audio is read and resampled in
  that process with the same soundfile + soxr code w2v uses (the pipeline would need
  ffmpeg for that);
- `w2v transcribe --dtype fp32` and `w2v transcribe` with its default dtype.

Columns: wall time, real-time factor (wall / audio), throughput ratio to the best pipeline
run, peak RSS (ru_maxrss of that process), the model forward time w2v logs (``--debug``),
the floor -- model FLOPs (torch.utils.flop_counter, eager attention, no_grad, counted on
the exact inputs each workload feeds the model) divided by the matmul GFLOP/s measured in
this run, fp32 for fp32 rows and bf16 for bf16 rows -- and the character error rate of the
transcripts against the pipeline's at batch_size 1 (random weights: a worst case for rounding, since every
frame is a near-tie).

A second table, for accuracy (workload "demo"): the bundled demo model (`--model demo`), `w2v
eval --dtype fp32` against `w2v eval` with the default dtype on the held-out synthesized
sentences of scripts/make_synth_corpus.py (data/synth/heldout_{hibari,espeak}.tsv, skipped
with a note when absent), with the WER difference and its paired-bootstrap 95% interval
(w2v_cli.evaluate.compare): random weights say nothing about accuracy.

`--device cuda` runs every system's model on the GPU (the pipeline on cuda:0, `w2v --device
cuda`); the matmul rate is then measured on 16 x 1000 rows at once, and the floor, a few
milliseconds, says little: wall times there are mostly start-up and model loading.

Nothing is assumed: every number in the tables is measured by this script, in this run.
On a shared machine run it when `uptime` shows it idle. With --repeats N each system runs N
times, alternating with the others: the wall-time columns keep each system's fastest run; the
model-time columns ("forward s", "forward ÷ floor") give the median over the N runs and their
range, against the floor at the best matmul rate seen in the whole workload (sampled before the
first repeat, between repeats and after the last): a typical run against the machine's best.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK_S = 20.0  # seconds, w2v's default inference.chunk_s
STRIDE_S = 3.0  # seconds each side, w2v's default inference.stride_s
SAMPLE_RATE = 16000  # Hz
JOINED_S = 600.0  # seconds in the joined recording


# -- set-up --------------------------------------------------------------------------------


def make_base_model(folder: Path) -> Path:
    """wav2vec2-base(-960h) architecture, random weights, with a processor."""
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from w2v_cli.testing import make_processor

    processor = make_processor(folder)
    config = Wav2Vec2Config(vocab_size=len(processor.tokenizer), pad_token_id=processor.tokenizer.pad_token_id,
                            ctc_loss_reduction="sum")
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_joined_recording(files: list[Path], path: Path, seconds: float = JOINED_S) -> Path:
    """The recordings one after another (16 kHz), from the start again until `seconds`."""
    if path.is_file():
        return path
    import soundfile as sf

    from w2v_cli.audio import load_audio

    need = int(seconds * SAMPLE_RATE)
    with sf.SoundFile(str(path), "w", SAMPLE_RATE, 1, "PCM_16", format="FLAC") as out:
        written = 0
        while written < need:
            for f in files:
                x = load_audio(f)[: need - written]
                out.write(x)
                written += len(x)
                if written >= need:
                    break
    return path


def make_long_recording(path: Path, minutes: int = 60) -> Path:
    """A synthetic speech-like recording, written a minute at a time (never whole in memory)."""
    if path.is_file():
        return path
    import soundfile as sf

    from w2v_cli.testing import synth_speechlike

    with sf.SoundFile(str(path), "w", SAMPLE_RATE, 1, "PCM_16", format="FLAC") as out:
        for minute in range(minutes):
            out.write(synth_speechlike(60.0, SAMPLE_RATE, seed=minute))
    return path


def matmul_gflops(dtype_name: str, repeats: int = 20, device: str = "cpu") -> float:
    """Best GFLOP/s of a (1000 x 768) @ (768 x 3072) GEMM, a wav2vec2-base FFN shape; on a
    GPU, where one such GEMM is too small to fill the chip, of 16 of them at once (a batch
    of 16 x 1000 frames: the rate the model's GEMMs could reach at best)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    rows = 1000 if device == "cpu" else 16_000
    a = torch.randn(rows, 768, dtype=dtype, device=device)
    b = torch.randn(768, 3072, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - started)
    return 2 * rows * 768 * 3072 / best / 1e9


def forward_lengths(durations_samples: list[int], chunked: bool) -> list[int]:
    """Input lengths (samples) of the model calls w2v and the pipeline make."""
    from w2v_cli.inference import iter_chunks

    chunk, stride = int(CHUNK_S * SAMPLE_RATE), int(STRIDE_S * SAMPLE_RATE)
    lengths = []
    for n in durations_samples:
        if not chunked:
            lengths.append(n)
            continue
        lengths += [len(c.samples) for c in iter_chunks([np.zeros(n, np.float32)], chunk, stride, stride)]
    return lengths


def model_flops(model_dir: Path, lengths: list[int]) -> float:
    """FLOPs of one forward per length: flop_counter, eager attention, no_grad, on meta
    tensors (shapes only, so nothing is computed)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config.from_pretrained(model_dir)
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = Wav2Vec2ForCTC(config).eval()
    total = 0
    cache: dict[int, int] = {}
    for n in lengths:
        if n not in cache:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(torch.zeros(1, n, device="meta"))
            cache[n] = counter.get_total_flops()
        total += cache[n]
    return float(total)


# -- running the systems ---------------------------------------------------------------------


@dataclass
class Run:
    workload: str
    system: str
    dtype: str  # fp32 | bf16
    wall_s: float
    cpu_s: float  # user + system time of the process, both threads
    peak_rss_mb: float
    texts: list[str]
    forward_s: float | None = None
    extra: dict = field(default_factory=dict)


def run_process(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str, str, int]:
    """Run `cmd`; returns (wall s, CPU s, peak RSS MB, stdout, stderr, exit status)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss / 1024, out.read().decode(), err.read().decode(), proc.returncode


def pipeline_worker(model_dir: str, batch_size: int, files: list[str], output: str, device: str = "cpu") -> None:
    """Runs inside its own process: the transformers pipeline over `files`."""
    from transformers import pipeline

    from w2v_cli.audio import load_audio

    asr = pipeline("automatic-speech-recognition", model=model_dir, device=device)

    def inputs():
        for f in files:
            yield {"raw": load_audio(f, SAMPLE_RATE), "sampling_rate": SAMPLE_RATE}

    texts = [out["text"] for out in asr(inputs(), chunk_length_s=CHUNK_S, stride_length_s=STRIDE_S,
                                         batch_size=batch_size)]
    Path(output).write_text(json.dumps(texts))


def run_pipeline(workload: str, model_dir: Path, files: list[Path], batch_size: int, env: dict,
                 device: str = "cpu") -> Run:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        output = f.name
    cmd = [sys.executable, __file__, "--pipeline-worker", device, str(model_dir), str(batch_size), output,
           *map(str, files)]
    wall, cpu, rss, _, err, status = run_process(cmd, env)
    if status != 0:
        raise SystemExit(f"pipeline (batch_size {batch_size}) failed:\n{err[-3000:]}")
    texts = json.loads(Path(output).read_text())
    os.unlink(output)
    return Run(workload, f"transformers pipeline, batch_size {batch_size}", "fp32", wall, cpu, rss, texts)


def dtype_run(debug_log: str) -> str:
    """The dtype a w2v process ran its model in, from its --debug log ("loaded ... in torch.X")."""
    loaded = re.search(r"loaded .* in torch\.(\w+)", debug_log)
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(loaded.group(1) if loaded else "", "?")


def w2v_command() -> list[str]:
    """The installed `w2v` beside this interpreter, else the module (an uninstalled checkout)."""
    w2v = Path(sys.executable).parent / "w2v"
    return [str(w2v)] if w2v.is_file() else [sys.executable, "-m", "w2v_cli.cli"]


def run_w2v(workload: str, model_dir: Path, files: list[Path], dtype: str | None, env: dict,
            device: str = "cpu") -> Run:
    cmd = [*w2v_command(), "transcribe", *map(str, files), "--model", str(model_dir), "--debug"]
    if device != "cpu":
        cmd += ["--device", device]
    if dtype:
        cmd += ["--dtype", dtype]
    wall, cpu, rss, out, err, status = run_process(cmd, env)
    if status != 0:
        raise SystemExit(f"w2v transcribe failed ({status}):\n{err[-3000:]}")
    lines = out.rstrip("\n").split("\n")
    texts = [line.split("\t", 1)[1] if len(files) > 1 else line for line in lines]
    match = re.search(r"model forward ([\d.]+) s", err)
    resolved = dtype_run(err)
    name = f"w2v transcribe --dtype {dtype}" if dtype else "w2v transcribe (default dtype)"
    return Run(workload, name, resolved, wall, cpu, rss, texts, float(match.group(1)) if match else None)


def run_eval(model: str, dataset: Path, dtype: str | None, out: Path, env: dict) -> dict:
    """`w2v eval` as a whole process; its summary.json plus wall s and the dtype it ran in."""
    w2v = Path(sys.executable).parent / "w2v"
    cmd = [str(w2v), "eval", "--model", model, "--dataset", str(dataset), "--set", "text.case=upper", "--decoder", "greedy",
           "-o", str(out), "--debug"] + (["--dtype", dtype] if dtype else [])
    wall, _, _, _, err, status = run_process(cmd, env)
    if status != 0:
        raise SystemExit(f"w2v eval failed ({status}):\n{err[-3000:]}")
    resolved = dtype_run(err)
    return {**json.loads((out / "summary.json").read_text()), "wall_s": wall, "dtype": resolved}


def demo_accuracy(model: str, datasets: list[Path], work_dir: Path, env: dict) -> list[str]:
    """Markdown rows: each dataset's WER in fp32 and in the default dtype, and the difference."""
    from w2v_cli.evaluate import compare, read_scores

    rows = []
    for dataset in datasets:
        if not dataset.is_file():
            print(f"demo accuracy: {dataset} is missing (make it with scripts/make_synth_corpus.py "
                  "--out data/synth); skipped", file=sys.stderr)
            continue
        fp32_dir, default_dir = work_dir / f"eval-{dataset.stem}-fp32", work_dir / f"eval-{dataset.stem}-default"
        fp32 = run_eval(model, dataset, "fp32", fp32_dir, env)
        default = run_eval(model, dataset, None, default_dir, env)
        c = compare(read_scores(fp32_dir), read_scores(default_dir))
        for run, diff in ((fp32, "-"), (default, f"{100 * c.difference:+.2f} [{100 * c.low:+.2f}, {100 * c.high:+.2f}]")):
            rows.append(f"| {dataset.name} ({run['utterances']} utt., {run['reference_words']} words) | "
                        f"{run['dtype']} | {run['wer']:.4f} | {run['cer']:.4f} | {run['wall_s']:.1f} | {diff} |")
    return rows


def spread(values: list[float], scale: float, fmt: str) -> str:
    """The median of `values` times `scale`, and with several values their range: "1.25
    (1.19-1.31)"; "-" for none. Model time drifts with the shared machine's speed (+-5% between
    back-to-back runs), so with --repeats the compute columns give the median run, not the best."""
    if not values:
        return "-"
    scaled = sorted(v * scale for v in values)
    text = fmt.format(float(np.median(scaled)))
    return text if len(scaled) == 1 else f"{text} ({fmt.format(scaled[0])}–{fmt.format(scaled[-1])})"


# The CPU targets of the issue that asked for this benchmark, on the 79 recordings.
FP32_VS_PIPELINE = 1.15  # --dtype fp32: at least this many times the pipeline's throughput
FP32_MAX_CER = 0.01  # ... with transcripts this close to the pipeline's (float noise only)
DEFAULT_VS_PIPELINE = 2.0  # the default dtype: at least this many times the pipeline's throughput
BF16_FORWARD_VS_FLOOR = 1.3  # ... with its model time (median run) within this of the bf16 floor


def verdicts(fp32_ratio: float, fp32_cer: float, default_ratio: float, default_dtype: str,
             default_forwards: list[float], bf16_floor_s: float) -> list[str]:
    """One line per target: the measured value, the target and whether it is met. The model
    time is the median of the runs (see spread); with no forward times (or a default dtype
    other than bf16) that target is reported as not measured."""
    def line(what: str, value: str, met: bool, target: str) -> str:
        return f"{what}: {value} ({target}: {'met' if met else 'NOT met'})"

    out = [line("--dtype fp32 vs the pipeline", f"{fp32_ratio:.2f}×", fp32_ratio >= FP32_VS_PIPELINE,
                f"≥ {FP32_VS_PIPELINE}×"),
           line("--dtype fp32 CER vs the pipeline", f"{fp32_cer:.4f}", fp32_cer <= FP32_MAX_CER, f"≤ {FP32_MAX_CER}"),
           line("default dtype vs the pipeline", f"{default_ratio:.2f}×", default_ratio >= DEFAULT_VS_PIPELINE,
                f"≥ {DEFAULT_VS_PIPELINE}×")]
    if default_dtype == "bf16" and default_forwards:
        ratio = float(np.median(default_forwards)) / bf16_floor_s
        out.append(line(f"default (bf16) model time ÷ bf16 floor, median of {len(default_forwards)}",
                        f"{ratio:.3f}", ratio <= BF16_FORWARD_VS_FLOOR, f"≤ {BF16_FORWARD_VS_FLOOR}"))
    else:
        out.append(f"default model time ÷ bf16 floor: not measured (default dtype {default_dtype})")
    return out


def cer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    pairs = [(r, h) for r, h in zip(references, hypotheses) if r]
    return jiwer.cer([r for r, _ in pairs], [h for _, h in pairs]) if pairs else 0.0


# -- the table -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speech-dir", type=Path, default=Path(os.environ.get("W2V_SHARED", ROOT.parent / "shared"))
                        / "data" / "speech")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "w2v-bench",
                        help="Where the random model and the joined recording are kept between runs.")
    parser.add_argument("--pipeline-batch-sizes", default="1,4,8")
    parser.add_argument("--workloads", default="files,joined,demo",
                        help="Comma-separated: files, joined, hour (a synthetic 60-minute file, w2v only), "
                             "demo (accuracy of the demo model, fp32 vs default dtype).")
    parser.add_argument("--demo-model", default="demo", help="The CTC model of the accuracy table.")
    parser.add_argument("--demo-datasets", default="data/synth/heldout_hibari.tsv,data/synth/heldout_espeak.tsv",
                        help="Comma-separated manifests for the accuracy table (relative to the repository).")
    parser.add_argument("--repeats", type=int, default=1,
                        help="Runs per system, alternating: the wall-time columns keep the fastest run, "
                             "the forward columns give the median (and the range) over all runs.")
    parser.add_argument("--max-files", type=int, default=0, help="Only the first N recordings (a smoke test).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="Where every system runs its model (the pipeline on cuda:0, `w2v --device cuda`).")
    args = parser.parse_args()

    import soundfile as sf
    import torch
    import transformers

    args.work_dir.mkdir(parents=True, exist_ok=True)
    model_dir = make_base_model(args.work_dir / "wav2vec2-base-random")
    from w2v_cli.audio import find_audio_files

    files = find_audio_files(args.speech_dir / "audio")  # FLAC, WAV and MP3, 16-48 kHz
    files = files[: args.max_files] if args.max_files else files
    if not files:
        raise SystemExit(f"no recordings in {args.speech_dir / 'audio'}")
    joined = make_joined_recording(files, args.work_dir / f"joined-{len(files)}-recordings-10min.flac")
    workloads = {
        "files": (f"{len(files)} recordings", files, False),
        "joined": (f"{JOINED_S / 60:.0f}-minute recording", [joined], True),
    }
    wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(wanted) - {"files", "joined", "hour", "demo"})
    if unknown:
        raise SystemExit(f"--workloads: unknown {', '.join(unknown)}; choose from files, joined, hour, demo")
    if "hour" in wanted:  # memory in the file's length: w2v only (the pipeline holds it whole)
        hour = make_long_recording(args.work_dir / "synthetic-60min.flac")
        workloads["hour"] = ("60-minute recording", [hour], True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()
    # The best matmul rate seen (before and after each workload) gives the lowest floor.
    dtypes = ("fp32", "bf16") if args.device == "cpu" else ("fp32", "bf16", "fp16")
    gflops = {d: matmul_gflops(d, device=args.device) for d in dtypes}

    def best_rates(gflops: dict[str, float]) -> dict[str, float]:
        return {d: max(g, matmul_gflops(d, device=args.device)) for d, g in gflops.items()}

    measured = []  # (workload name, audio s, FLOPs, best run per system)
    for key in wanted:
        if key == "demo":
            continue
        name, inputs, chunked = workloads[key]
        durations = [sf.info(str(f)).duration for f in inputs]
        lengths = forward_lengths([int(round(d * SAMPLE_RATE)) for d in durations], chunked)
        flops = model_flops(model_dir, lengths)
        best: dict[str, Run] = {}
        forwards: dict[str, list[float]] = {}  # every run's model time, per system
        for repeat in range(args.repeats):
            if repeat:  # the machine's speed drifts: sample the matmul rate between repeats too
                gflops = best_rates(gflops)
            runs = [run_pipeline(name, model_dir, inputs, bs, env, args.device)
                    for bs in ([int(b) for b in args.pipeline_batch_sizes.split(",") if b.strip()]
                               if key != "hour" else [])]
            runs += [run_w2v(name, model_dir, inputs, "fp32", env, args.device),
                     run_w2v(name, model_dir, inputs, None, env, args.device)]
            for r in runs:
                if r.system not in best or r.wall_s < best[r.system].wall_s:
                    best[r.system] = r
                if r.forward_s is not None:
                    forwards.setdefault(r.system, []).append(r.forward_s)
        gflops = best_rates(gflops)
        measured.append((name, sum(durations), flops, best, forwards))

    rows = []
    checks = []  # (workload, verdict lines): the CPU targets
    for name, audio_s, flops, best, forwards in measured:
        pipelines = [r for r in best.values() if r.system.startswith("transformers")]
        reference = min(pipelines, key=lambda r: r.wall_s) if pipelines else None
        # Transcripts are compared with batch_size 1: larger pipeline batches zero-pad
        # (no attention mask for wav2vec2-base), which changes a group-norm model's logits.
        exact = next((r for r in pipelines if r.system.endswith("batch_size 1")), reference)
        floors = {d: flops / (g * 1e9) for d, g in gflops.items()}
        cers = {r.system: cer(exact.texts, r.texts) for r in best.values() if exact and r is not exact}
        for r in best.values():
            floor_s = floors.get(r.dtype, floors["fp32"])
            rows.append({
                "workload": f"{name} ({audio_s / 60:.1f} min)",
                "system": r.system + (" ← best" if r is reference and len(pipelines) > 1 else ""),
                "dtype": r.dtype,
                "wall s": f"{r.wall_s:.1f}",
                "RTF": f"{r.wall_s / audio_s:.3f}",
                "× pipeline": f"{reference.wall_s / r.wall_s:.2f}" if reference else "-",
                "CPU s": f"{r.cpu_s:.0f}",
                "peak RSS MB": f"{r.peak_rss_mb:.0f}",
                "forward s": spread(forwards.get(r.system, []), 1, "{:.1f}"),
                "floor s (RTF)": (f"{floor_s:.1f} ({floor_s / audio_s:.3f})" if floor_s >= 1  # a GPU's is tiny
                                  else f"{floor_s:.3f} ({floor_s / audio_s:.1e})"),
                "forward ÷ floor": spread(forwards.get(r.system, []), 1 / floor_s, "{:.3f}"),  # decidable at a target
                "CER vs pipeline bs 1": f"{cers[r.system]:.4f}" if r.system in cers else "-",
            })
        fp32 = best.get("w2v transcribe --dtype fp32")
        default = best.get("w2v transcribe (default dtype)")
        if args.device == "cpu" and reference and fp32 and default and name == workloads["files"][0]:
            checks.append((f"{name} ({audio_s / 60:.1f} min)", verdicts(
                reference.wall_s / fp32.wall_s, cers[fp32.system], reference.wall_s / default.wall_s,
                default.dtype, forwards.get(default.system, []), floors["bf16"])))
    flops_per_s = {name: flops / audio_s / 1e9 for name, audio_s, flops, _, _ in measured}
    accuracy = (demo_accuracy(args.demo_model, [ROOT / d.strip() for d in args.demo_datasets.split(",") if d.strip()],
                              args.work_dir, env) if "demo" in wanted else [])

    load_after = os.getloadavg()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    if args.device != "cpu":
        print(f"Device: {torch.cuda.get_device_name(0)}; every system's model runs there.")
    shape = "1000×768 @ 768×3072" if args.device == "cpu" else "16000×768 @ 768×3072"
    print(f"Matmul ({shape}, best seen, before each repeat and after each workload): "
          + ", ".join(f"{g:.0f} GFLOP/s {d}" for d, g in gflops.items()) + ". Model FLOPs per audio second: "
          + "; ".join(f"{w}: {g:.1f} GFLOP" for w, g in flops_per_s.items()) + ".")
    if rows:
        print()
        columns = list(rows[0])
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---" for _ in columns) + "|")
        for row in rows:
            print("| " + " | ".join(row[c] for c in columns) + " |")
    for workload, lines in checks:
        print(f"\nTargets (set for all the shared recordings, on a CPU) on {workload}, this run:")
        print("\n".join(f"- {line}" for line in lines))
    if accuracy:
        print(f"\nAccuracy of `--model {args.demo_model}`, `w2v eval` greedy, fp32 vs the default dtype "
              "(WER difference in points, paired-bootstrap 95% interval):\n")
        print("| held-out set | dtype | WER | CER | wall s | WER − fp32 [95% interval] |")
        print("|---|---|---|---|---|---|")
        print("\n".join(accuracy))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pipeline-worker":
        device, model, batch, out, *paths = sys.argv[2:]
        pipeline_worker(model, int(batch), paths, out, device)
    else:
        main()
