#!/usr/bin/env python3
"""Deterministic synthetic English speech with known transcripts, for `w2v finetune`.

Two synthesizers speak the LibriSpeech sentences in ``../shared/data/text/``:

* ``hibari`` -- the ``hibari-tts`` package's bundled neural voice ("heart", American
  female, 24 kHz; the package's other voices need a download, so they are not used), at
  several speeds, each with several noise seeds (the vocoder's random noise component).
* ``espeak`` -- ``espeak-ng`` (apt) with several English voices, voice variants and speeds.

Every sentence whose id appears in ``../shared/data/speech/manifest.tsv`` is left out, so
evaluating on those real recordings stays fair. Sentences are split into train and
held-out by a hash of their *text* (identical texts always land in the same split), so no
held-out sentence is ever spoken in train.

Output (``--out``, default ``data/synth``)::

    audio/<voice>/<sentence id>.flac   16 kHz mono 16-bit FLAC
    train.tsv                          id  path  text  voice  duration_s
    heldout.tsv                        every held-out sentence once per voice family
    heldout_hibari.tsv, heldout_espeak.tsv   the same, split by family
    ATTRIBUTION.md, synth_info.json

``path`` is relative to the manifest; ``text`` is the upper-case LibriSpeech transcript as
in the text file; ``voice`` is e.g. ``hibari-s1.1-n2`` (speed 1.1, noise seed 2) or
``espeak-en-us+f3-s160`` (voice en-us, variant f3, 160 words per minute).

Determinism: the split, the voice assigned to each (sentence, pass), the speeds and the
noise depend only on the arguments, never on --jobs or on timing. A file's content depends
only on its sentence and voice name, which is what makes resuming safe: files that exist
are reused, new ones are written to a temporary name and renamed into place, manifests are
written at the end (atomically), in plan order.

Usage::

    bash scripts/install_tts.sh .venv            # espeak-ng + sox (apt), hibari-tts (pip)
    .venv/bin/python scripts/make_synth_corpus.py --max-sentences 40          # quick look
    nice -n 10 .venv/bin/python scripts/make_synth_corpus.py --hours 3 --jobs 2
    # then point w2v finetune's data.train at data/synth/train.tsv and data.eval at
    # data/synth/heldout.tsv (or heldout_hibari.tsv / heldout_espeak.tsv)

Measured on the 2-core dev machine (nice 10): hibari ~120x realtime per worker, espeak
~240x; 3 h of train audio plus the held-out set take ~45 s with --jobs 2 (~240 MB).

--hours H stops once the train files, taken in plan order, add up to H hours (held-out audio
comes on top: one rendition per family of each held-out sentence, ~35 min by default).
Without --hours every train sentence is spoken --passes times (default 1), each pass
with a different, hash-chosen voice.

--extra-text FILE adds train-only sentences from another text (the demo recipe uses WordNet's
usage examples, scripts/wordnet_text.py), each spoken --extra-passes times; they come after
the text file's sentences in plan order (so --hours takes those first), and the text file's
files are the same with or without them.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = REPO.parent / "shared" / "data" / "text" / "librispeech_test_text.tsv"
DEFAULT_EXCLUDE = REPO.parent / "shared" / "data" / "speech" / "manifest.tsv"
FAMILIES = ("hibari", "espeak")
MANIFEST_COLUMNS = ("id", "path", "text", "voice", "duration_s")

# hibari: speed 1.0 is the teacher's pace; 0.85..1.2 stays natural. Noise seeds give
# different breathiness/aspiration for the same prosody (the model itself is deterministic).
HIBARI_SPEEDS = (0.85, 0.95, 1.0, 1.1, 1.2)
HIBARI_NOISE_SEEDS = (0, 1, 2, 3)
# espeak-ng: built-in (non-mbrola) English voices; variants change pitch/formants/gender.
# Joke variants (whisper, croak, robots) are left out: they would teach the model noise.
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland")
ESPEAK_VARIANTS = ("", "m1", "m3", "m7", "f1", "f3", "f4", "klatt")
ESPEAK_SPEEDS = (140, 160, 175, 190)  # words per minute; 175 is espeak's default
PEAK = 0.9  # peak-normalise every file: the two engines differ in level by ~10 dB
MIN_HELDOUT = 100
TEXT_RE = re.compile(r"[A-Z' ]+")  # LibriSpeech transcripts: letters, apostrophe, space


# --------------------------------------------------------------------------------------
# Plan: sentences, split, voices
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Sentence:
    id: str
    text: str  # upper case, exactly as in the text file

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclasses.dataclass(frozen=True)
class Voice:
    family: str  # "hibari" | "espeak"
    speed: float  # hibari: speed factor; espeak: words per minute
    noise_seed: int = 0  # hibari only
    espeak_voice: str = ""  # espeak only, e.g. "en-us+f3"

    @property
    def name(self) -> str:
        if self.family == "hibari":
            return f"hibari-s{self.speed:g}-n{self.noise_seed}"
        return f"espeak-{self.espeak_voice}-s{int(self.speed)}"


@dataclasses.dataclass(frozen=True)
class Job:
    sentence: Sentence
    voice: Voice
    split: str  # "train" | "heldout"

    @property
    def rel_path(self) -> str:
        return f"audio/{self.voice.name}/{self.sentence.id}.flac"

    @property
    def item_id(self) -> str:
        return f"{self.sentence.id}__{self.voice.name}"


def stable_hash(*parts: object) -> int:
    """64-bit hash that, unlike hash(), is the same in every process and Python run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def voice_catalog(family: str) -> list[Voice]:
    if family == "hibari":
        return [Voice("hibari", s, n) for s in HIBARI_SPEEDS for n in HIBARI_NOISE_SEEDS]
    return [
        Voice("espeak", wpm, espeak_voice=v + (f"+{var}" if var else ""))
        for v in ESPEAK_VOICES
        for var in ESPEAK_VARIANTS
        for wpm in ESPEAK_SPEEDS
    ]


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def load_sentences(text_tsv: Path, exclude_tsv: Path, max_words: int,
                   long_out: list[Sentence] | None = None) -> list[Sentence]:
    """Sentences from the text file, minus excluded ids, too-long and malformed ones; the
    too-long ones are appended to `long_out` when it is given."""
    excluded = {row["id"] for row in read_tsv(exclude_tsv)} if exclude_tsv.exists() else set()
    if not excluded:
        log(f"warning: no ids to exclude ({exclude_tsv} missing or empty)")
    out, n_excl, n_long, n_bad = [], 0, 0, 0
    for row in read_tsv(text_tsv):
        s = Sentence(row["id"], " ".join(row["text"].split()))
        if s.id in excluded:
            n_excl += 1
        elif not TEXT_RE.fullmatch(s.text):
            n_bad += 1  # also guards the espeak command line: text never starts with '-'
        elif max_words and s.words > max_words:
            n_long += 1
            if long_out is not None:
                long_out.append(s)
        else:
            out.append(s)
    log(f"{len(out)} sentences from {text_tsv.name}; left out {n_excl} in {exclude_tsv.name}, "
        f"{n_long} over {max_words} words, {n_bad} malformed")
    return out


def split_long(sentences: Sequence[Sentence], max_words: int) -> list[Sentence]:
    """Each sentence over `max_words` words cut into the fewest pieces of at most `max_words`
    words, as equal as possible, with ids `<id>_p1`, `<id>_p2`, ... (a piece is spoken as a
    sentence of its own: its transcript is exactly its words)."""
    pieces = []
    for s in sentences:
        words = s.text.split()
        n = math.ceil(len(words) / max_words)
        bounds = [round(i * len(words) / n) for i in range(n + 1)]
        pieces += [Sentence(f"{s.id}_p{i + 1}", " ".join(words[bounds[i]:bounds[i + 1]])) for i in range(n)]
    return pieces


def add_train_pieces(train: Sequence[Sentence], heldout: Sequence[Sentence], pieces: Sequence[Sentence],
                     seed: int) -> list[Sentence]:
    """`train` plus the pieces of long sentences, in the seeded order of split_sentences. The
    held-out split is left exactly as it was without them (it is made from whole sentences
    only), and a piece whose text is a held-out sentence is dropped."""
    held_texts = {s.text for s in heldout}
    merged = list(train) + [p for p in pieces if p.text not in held_texts]
    return sorted(merged, key=lambda s: (stable_hash(seed, "order", s.id), s.id))


def load_extra(path: Path, train: Sequence[Sentence], heldout: Sequence[Sentence],
               seed: int) -> list[Sentence]:
    """Train-only sentences from another text (`--extra-text`), in a seeded order: malformed
    ones, those whose id or text is already in the corpus, and any that reads exactly like a
    held-out sentence are left out."""
    if not path.exists():
        sys.exit(f"--extra-text {path}: no such file (make it with scripts/wordnet_text.py)")
    rows = read_tsv(path)
    if rows and not {"id", "text"} <= set(rows[0]):
        sys.exit(f"--extra-text {path}: needs the columns id and text, has {', '.join(rows[0])}")
    known_ids = {s.id for s in train} | {s.id for s in heldout}
    known_texts = {s.text for s in train} | {s.text for s in heldout}
    out, n_bad, n_dup = [], 0, 0
    for row in rows:
        s = Sentence(row["id"], " ".join((row["text"] or "").split()))
        if not TEXT_RE.fullmatch(s.text):
            n_bad += 1
        elif s.id in known_ids or s.text in known_texts:
            n_dup += 1
        else:
            known_ids.add(s.id)
            known_texts.add(s.text)
            out.append(s)
    log(f"{len(out)} extra train sentences from {path.name}; left out {n_dup} already in the corpus "
        f"or held out, {n_bad} malformed")
    return sorted(out, key=lambda s: (stable_hash(seed, "order", s.id), s.id))


def split_sentences(sentences: Sequence[Sentence], heldout_frac: float, seed: int,
                    min_heldout: int = MIN_HELDOUT) -> tuple[list[Sentence], list[Sentence]]:
    """Train / held-out by rank of a hash of the text: stable, no shared text across splits.

    Both lists come back in a seeded pseudo-random order, so taking a prefix of either
    (--max-sentences, --hours) gives a representative sample.
    """
    texts = sorted({s.text for s in sentences}, key=lambda t: (stable_hash(seed, "split", t), t))
    n_held = min(len(texts) // 2, max(min_heldout, round(heldout_frac * len(texts))))
    held_texts = set(texts[:n_held])
    order = sorted(sentences, key=lambda s: (stable_hash(seed, "order", s.id), s.id))
    return ([s for s in order if s.text not in held_texts],
            [s for s in order if s.text in held_texts])


def pick_voice(catalog: Sequence[Voice], seed: int, *key: object) -> Voice:
    return catalog[stable_hash(seed, "voice", *key) % len(catalog)]


def plan_jobs(train: Sequence[Sentence], heldout: Sequence[Sentence], families: Sequence[str],
              passes: int, seed: int) -> tuple[list[Job], list[Job]]:
    """Held-out: each sentence once per family. Train: per pass, each sentence once, the
    family alternating along the (shuffled) sentence order so families stay 50/50."""
    catalogs = {f: voice_catalog(f) for f in families}
    held_jobs = [Job(s, pick_voice(catalogs[f], seed, "heldout", s.id), "heldout")
                 for s in heldout for f in families]
    train_jobs, seen = [], set()
    for p in range(passes):
        for i, s in enumerate(train):
            fam = families[(i + p) % len(families)]
            voice = pick_voice(catalogs[fam], seed, p, s.id)
            for bump in range(len(catalogs[fam])):  # later passes: don't repeat a rendition
                if (s.id, voice.name) not in seen:
                    break
                voice = pick_voice(catalogs[fam], seed, p, s.id, bump)
            seen.add((s.id, voice.name))
            train_jobs.append(Job(s, voice, "train"))
    return train_jobs, held_jobs


# --------------------------------------------------------------------------------------
# Synthesis (runs in worker processes)
# --------------------------------------------------------------------------------------
_HIBARI = None  # one model per process, loaded on first use


def synth_hibari(text: str, voice: Voice, sentence_id: str) -> tuple[np.ndarray, int]:
    global _HIBARI
    if _HIBARI is None:
        from hibari import Hibari  # imported lazily: espeak-only runs don't need it
        _HIBARI = Hibari(threads=1)  # one thread per worker; parallelism comes from --jobs
    # The noise seed is mixed with the sentence id so sentences don't share one noise
    # stream, but not with --seed: a file's content must depend only on its name (resume).
    rng_seed = stable_hash("hibari-noise", voice.noise_seed, sentence_id)
    # hibari's G2P spells out ALL-CAPS words as acronyms ("PAUL" -> P A U L): lower-case.
    audio = _HIBARI(text.lower(), speed=voice.speed, seed=rng_seed)
    return audio, _HIBARI.sample_rate


def synth_espeak(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        # Argument list, never a shell string; text is [a-z' ]+ (checked at load).
        # Lower case: espeak also reads some all-caps words as letters ("US" -> U S).
        # (No -q: in espeak-ng 1.51 it also suppresses the -w file.)
        cmd = ["espeak-ng", "-w", wav, "-v", voice.espeak_voice, "-s", str(int(voice.speed)),
               text.lower()]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode or not os.path.exists(wav):
            raise RuntimeError(f"espeak-ng {voice.espeak_voice} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        audio, sr = sf.read(wav, dtype="float32")
    return audio, sr


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * (PEAK / peak)
    return np.asarray(audio, dtype=np.float32)


def render(job: Job, out_dir: str) -> tuple[str, float, float]:
    """Make job's file unless it exists; returns (rel_path, duration_s, seconds spent)."""
    t0 = time.perf_counter()
    final = Path(out_dir) / job.rel_path
    if final.exists():
        return job.rel_path, sf.info(str(final)).frames / SAMPLE_RATE, 0.0
    if job.voice.family == "hibari":
        audio, sr = synth_hibari(job.sentence.text, job.voice, job.sentence.id)
    else:
        audio, sr = synth_espeak(job.sentence.text, job.voice)
    audio = to_16k(audio, sr)
    if audio.size < SAMPLE_RATE // 10:
        raise RuntimeError(f"{job.item_id}: synthesizer produced {audio.size} samples")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Temp name in the same folder + rename: an interrupted run never leaves a truncated
    # file under the final name, so "exists" means "complete" when resuming.
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.part.flac")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    os.replace(tmp, final)
    return job.rel_path, audio.size / SAMPLE_RATE, time.perf_counter() - t0


def _render_star(args: tuple[Job, str]) -> tuple[str, float, float]:
    return render(*args)


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[synth] {msg}", file=sys.stderr, flush=True)


def run_jobs(jobs: Sequence[Job], out_dir: Path, n_jobs: int, label: str,
             stop_after_s: float | None = None) -> list[tuple[Job, float]]:
    """Render jobs in plan order (imap keeps order even in parallel) and return the
    (job, duration) pairs to keep: all of them, or the shortest prefix reaching stop_after_s."""
    done: list[tuple[Job, float]] = []
    total_audio = new_audio = busy = 0.0
    t_start = last_log = time.perf_counter()
    per_family: dict[str, list[float]] = {}  # family -> [audio s, synth s] of new files
    work = [(j, str(out_dir)) for j in jobs]

    def results() -> Iterator[tuple[str, float, float]]:
        if n_jobs <= 1:
            yield from map(_render_star, work)
        else:
            import multiprocessing as mp
            with mp.get_context("fork").Pool(n_jobs) as pool:
                yield from pool.imap(_render_star, work, chunksize=1)
                # leaving the with-block terminates workers still busy past the stop point

    for job, (_, dur, spent) in zip(jobs, results()):
        done.append((job, dur))
        total_audio += dur
        if spent:
            new_audio += dur
            busy += spent
            fam = per_family.setdefault(job.voice.family, [0.0, 0.0])
            fam[0] += dur
            fam[1] += spent
        now = time.perf_counter()
        reached = stop_after_s is not None and total_audio >= stop_after_s
        if now - last_log > 10 or len(done) == len(jobs) or reached:
            last_log = now
            wall = now - t_start
            goal = f" of {stop_after_s / 3600:.2f}" if stop_after_s else ""
            log(f"{label}: {len(done)}/{len(jobs)} files, {total_audio / 3600:.3f}{goal} h audio, "
                f"new {new_audio:.0f} s in {wall:.0f} s wall ({new_audio / max(wall, 1e-9):.1f}x realtime)")
        if reached:
            break
    for fam, (audio_s, spent) in sorted(per_family.items()):
        log(f"{label}: {fam}: {audio_s:.0f} s audio in {spent:.0f} s of worker time "
            f"({audio_s / max(spent, 1e-9):.1f}x realtime per worker)")
    if stop_after_s is not None and total_audio < stop_after_s:
        log(f"warning: {label} ran out of sentences at {total_audio / 3600:.2f} h; raise --passes")
    return done


def write_manifest(path: Path, rows: Iterable[tuple[Job, float]]) -> int:
    """TSV in the shared manifest's style, written to a temp file and renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE)
        w.writerow(MANIFEST_COLUMNS)
        for job, dur in rows:
            w.writerow([job.item_id, job.rel_path, job.sentence.text, job.voice.name, f"{dur:.3f}"])
            n += 1
    os.replace(tmp, path)
    return n


ATTRIBUTION = """\
# Attribution

Synthetic speech made by `scripts/make_synth_corpus.py` (w2v_cli).

- Texts: LibriSpeech test-clean and test-other transcripts, CC BY 4.0, (c) 2014 Vassil
  Panayotov. Cite: Panayotov et al., "LibriSpeech: an ASR corpus based on public domain
  audio books", ICASSP 2015. Taken via facebookresearch/fbai-speech
  (`is21_deep_bias/ref/*.biasing_100.tsv`, MIT). Ids that are recordings in
  `shared/data/speech/manifest.tsv` were left out.
- Voices: `hibari-tts` {hibari} (Apache-2.0; bundled voice "heart", distilled from
  Kokoro-82M af_heart) and `espeak-ng` {espeak} (GPL-3.0; run as a program, not linked).
  The audio is machine-generated; no human recording is included.

Anything that ships this audio or texts derived from it must keep this attribution.
"""
ATTRIBUTION_WORDNET = """
- Extra training texts (`--extra-text`, ids `wordnet-*`): usage examples from WordNet 3.0
  (Debian's `wordnet-base`). Cite: George A. Miller (1995), "WordNet: A Lexical Database for
  English", Communications of the ACM 38(11). Its licence and notice, which must be kept:

  Permission to use, copy, modify and distribute this software and database and its
  documentation for any purpose and without fee or royalty is hereby granted, provided that
  you agree to comply with the following copyright notice and statements, including the
  disclaimer, and that the same appear on ALL copies of the software, database and
  documentation, including modifications that you make for internal use or for distribution.

  WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

  THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
  REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION,
  PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS
  FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR
  DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER
  RIGHTS.

  The name of Princeton University or Princeton may not be used in advertising or publicity
  pertaining to distribution of the software and/or database.  Title to copyright in this
  software, database and any associated documentation shall at all times remain with
  Princeton University and LICENSEE agrees to preserve same.
"""


def tool_versions(families: Sequence[str]) -> dict[str, str]:
    v = {"hibari": "(not used)", "espeak": "(not used)"}
    if "hibari" in families:
        import hibari
        v["hibari"] = hibari.__version__
    if "espeak" in families:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
        v["espeak"] = out.split(":")[1].split()[0] if ":" in out else out.strip()
    return v


def check_tools(families: Sequence[str]) -> None:
    if "espeak" in families and shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: run scripts/install_tts.sh")
    if "hibari" in families:
        try:
            import hibari  # noqa: F401
        except ImportError:
            sys.exit("hibari-tts not importable: run scripts/install_tts.sh (it installs into .venv)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "data" / "synth", help="output folder")
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="TSV with id, text columns")
    p.add_argument("--exclude", type=Path, default=DEFAULT_EXCLUDE,
                   help="manifest whose ids are left out (real recordings used for evaluation)")
    p.add_argument("--max-sentences", type=int, default=0,
                   help="use at most N sentences in all, split as usual (0 = all)")
    p.add_argument("--hours", type=float, default=0.0,
                   help="stop after about H hours of train audio (0 = all planned)")
    p.add_argument("--passes", type=int, default=0,
                   help="renditions of each train sentence, each with another voice "
                        "(default: 1, or as many as --hours needs, up to 10)")
    p.add_argument("--heldout-frac", type=float, default=0.05,
                   help=f"share of sentences held out (at least {MIN_HELDOUT}, at most half)")
    p.add_argument("--seed", type=int, default=0, help="split, sentence order and voice choice")
    p.add_argument("--voices", default="hibari,espeak", help="voice families: hibari,espeak")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--max-words", type=int, default=30, help="longest sentence spoken whole (0 = no limit)")
    p.add_argument("--long-sentences", choices=("drop", "split"), default="drop",
                   help="sentences over --max-words: left out (drop, as the demo recipe), or cut into "
                        "pieces of at most --max-words words for train only (split: ~64%% more train "
                        "text from the LibriSpeech file, whose long sentences hold 38%% of its words)")
    p.add_argument("--extra-text", type=Path, default=None,
                   help="TSV (id, text) of more sentences for train only, e.g. the output of "
                        "scripts/wordnet_text.py; any whose text is a held-out sentence is dropped")
    p.add_argument("--extra-passes", type=int, default=1,
                   help="renditions of each --extra-text sentence (default 1)")
    a = p.parse_args(argv)
    if a.extra_passes < 1:
        p.error("--extra-passes must be at least 1")
    a.families = tuple(f.strip() for f in a.voices.split(",") if f.strip())
    bad = [f for f in a.families if f not in FAMILIES]
    if bad or not a.families:
        p.error(f"--voices: unknown {bad}; choose from {','.join(FAMILIES)}")
    if not 0 < a.heldout_frac < 0.5:
        p.error("--heldout-frac must be in (0, 0.5)")
    if a.passes <= 0:
        a.passes = 10 if a.hours > 0 else 1
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    check_tools(a.families)
    # onnxruntime/BLAS threads: one per worker, or --jobs workers would oversubscribe.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    long_sentences: list[Sentence] = []
    sentences = load_sentences(a.text, a.exclude, a.max_words, long_sentences)
    train, heldout = split_sentences(sentences, a.heldout_frac, a.seed)
    if a.long_sentences == "split" and a.max_words:
        pieces = split_long(long_sentences, a.max_words)
        train = add_train_pieces(train, heldout, pieces, a.seed)
        log(f"{len(long_sentences)} sentences over {a.max_words} words cut into {len(pieces)} train pieces")
    if a.max_sentences and a.max_sentences < len(sentences):
        # Shrink both splits proportionally (prefixes of the seeded order, so a bigger run
        # is a superset of a smaller one); at least one held-out sentence.
        n_held = max(1, math.ceil(a.max_sentences * len(heldout) / len(sentences)))
        heldout, train = heldout[:n_held], train[: max(0, a.max_sentences - n_held)]
    log(f"split: {len(train)} train, {len(heldout)} held-out sentences (seed {a.seed})")
    extra = load_extra(a.extra_text, train, heldout, a.seed) if a.extra_text else []
    assert not {s.text for s in train + extra} & {s.text for s in heldout}

    train_jobs, held_jobs = plan_jobs(train, heldout, a.families, a.passes, a.seed)
    # The extra sentences are planned on their own, after the text file's: the jobs of the
    # text file's sentences (and so their files) are the same with or without --extra-text.
    train_jobs += plan_jobs(extra, [], a.families, a.extra_passes, a.seed)[0]
    a.out.mkdir(parents=True, exist_ok=True)
    for stale in a.out.glob("audio/*/.*.part.flac"):  # left by a killed run
        stale.unlink()

    held_done = run_jobs(held_jobs, a.out, a.jobs, "heldout")
    train_done = run_jobs(train_jobs, a.out, a.jobs, "train",
                          stop_after_s=a.hours * 3600 if a.hours > 0 else None)

    n = write_manifest(a.out / "train.tsv", train_done)
    m = write_manifest(a.out / "heldout.tsv", held_done)
    for fam in a.families:
        write_manifest(a.out / f"heldout_{fam}.tsv",
                       [(j, d) for j, d in held_done if j.voice.family == fam])
    versions = tool_versions(a.families)
    attribution = ATTRIBUTION.format(**versions)
    if any(s.id.startswith("wordnet-") for s in extra):
        attribution += ATTRIBUTION_WORDNET
    (a.out / "ATTRIBUTION.md").write_text(attribution, encoding="utf-8")
    train_h = sum(d for _, d in train_done) / 3600
    held_h = sum(d for _, d in held_done) / 3600
    info = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
            "versions": versions, "sample_rate": SAMPLE_RATE,
            "train": {"files": n, "hours": round(train_h, 4)},
            "heldout": {"files": m, "hours": round(held_h, 4)}}
    (a.out / "synth_info.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {a.out}/train.tsv ({n} files, {train_h:.3f} h), heldout.tsv ({m} files, {held_h:.3f} h)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
