"""The `w2v` command: a thin click shell over the library.

Each command parses its arguments, resolves the config (defaults < --config < --set <
flags), calls one library function and prints the result: results on stdout, logs and
progress on stderr. Heavy imports (torch, transformers) happen inside command bodies so
`w2v --help` is instant. Domain errors (W2VError) become click errors here and only here.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Config, load_config
from .errors import W2VError

logger = logging.getLogger("w2v")

# writers.WRITERS plus "all"; listed here so `w2v --help` need not import the writers.
OUTPUT_FORMATS = ["txt", "json", "srt", "vtt", "tsv", "ctm", "all"]
BUNDLED_AUDIO = Path(__file__).parent / "assets" / "audio" / "librispeech-1272-128104-0000.flac"
# Held-out synthesized speech (hibari-tts voice): the kind of speech the built-in demo models
# know, so `pretrain-check` of demo-pretrain defaults to it (see assets/audio/ATTRIBUTION.md).
SYNTH_AUDIO = Path(__file__).parent / "assets" / "audio" / "synth-hibari-4350-9170-0007.flac"


# -- shared plumbing ----------------------------------------------------------------------


def setup_logging(quiet: bool = False, debug: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:
        try:  # transformers' own progress bars and advice would drown our stderr
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:
            pass


class W2VGroup(click.Group):
    """Turns W2VError into a one-line message; other exceptions get a traceback only with
    --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except W2VError as e:
            raise click.ClickException(str(e)) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as e:
            if ctx.meta.get("w2v.debug"):
                raise
            raise click.ClickException(
                f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)"
            ) from None


def config_options(f: Callable) -> Callable:
    """--config, --set, --quiet and --debug, shared by every command."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="YAML config file (see configs/default.yaml).")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key; repeatable.")
    @click.option("--quiet", "-q", is_flag=True, help="Only results and errors; no progress or logs.")
    @click.option("--debug", is_flag=True, help="Verbose logs and full tracebacks.")
    @functools.wraps(f)
    def wrapper(*args: Any, config_path: str | None, overrides: tuple[str, ...], quiet: bool,
                debug: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.meta["w2v.debug"] = debug
        setup_logging(quiet, debug)
        ctx.meta["w2v.config"] = (config_path, overrides)
        ctx.meta["w2v.quiet"] = quiet
        return f(*args, **kwargs)

    return wrapper


def resolve_config(flags: dict[str, Any]) -> Config:
    """The command's config: defaults < --config < --set < flags (None = not given)."""
    ctx = click.get_current_context()
    path, overrides = ctx.meta["w2v.config"]
    named: set[str] = set()
    config = load_config(path, overrides, flags, named=named)
    ctx.meta["w2v.named"] = named  # keys the config file, its bases or --set gave (implicit_default)
    if ctx.meta.get("w2v.quiet"):
        config.inference.progress = False
    return config


def model_options(f: Callable) -> Callable:
    """--model, --device and --dtype for commands that run a CTC model."""
    f = click.option("--dtype", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
                     help="Compute dtype (default from config: auto = bf16 on CPUs with bf16 "
                          "instructions and on GPUs, else fp32).")(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None,
                     help="Where to run the model (default auto).")(f)
    f = click.option("--model", "-m", default=None,
                     help="Hub id, local model folder or built-in name "
                          "(default facebook/wav2vec2-base-960h).")(f)
    return f


def decoder_options(f: Callable) -> Callable:
    """--decoder, --beam-width, --lm, --alpha, --beta, --token-min-logp, --beam-prune-logp,
    --hotwords and --hotword-weight, which
    override the config's `decode` section, given to the command as one `decode` argument (a
    decoding.DecodeOptions)."""

    @click.option("--decoder", type=click.Choice(["greedy", "beam"]), default=None,
                  help="CTC decoding (default: beam when there is an LM -- --lm, or one the model "
                       "brings in its language_model/ folder -- or --hotwords, else greedy).")
    @click.option("--beam-width", type=click.IntRange(1), default=None, help="Beams kept per frame (default 100).")
    @click.option("--lm", "lm_path", default=None, metavar="FILE|none",
                  help="n-gram LM for beam search: ARPA (plain or .gz) or KenLM binary (see `w2v "
                       "build-lm`); 'none' = not even the model's own LM.")
    @click.option("--alpha", type=float, default=None,
                  help="LM weight (default: the model's LM's attrs.json, else 0.5).")
    @click.option("--beta", type=float, default=None,
                  help="Word insertion bonus (default: the model's LM's attrs.json, else 1.5).")
    @click.option("--token-min-logp", type=click.FloatRange(max=0), default=None,
                  help="Beam search tries a frame's characters down to this log-probability (default: "
                       "the model's LM's attrs.json, else -5; lower is slower and may find more).")
    @click.option("--beam-prune-logp", type=click.FloatRange(max=0), default=None,
                  help="Beams this far (log) below the best are dropped (default: the model's LM's "
                       "attrs.json, else -10).")
    @click.option("--hotwords", default=None, metavar="WORD[,WORD...]",
                  help="Comma-separated words or phrases for beam search to favour.")
    @click.option("--hotword-weight", type=float, default=None, help="How much to favour them (default 10).")
    @functools.wraps(f)
    def wrapper(*args: Any, decoder: str | None, beam_width: int | None, lm_path: str | None,
                alpha: float | None, beta: float | None, token_min_logp: float | None,
                beam_prune_logp: float | None, hotwords: str | None, hotword_weight: float | None,
                **kwargs: Any) -> Any:
        from .config import load_config
        from .decoding import options_from_config

        an_lm = lm_path is not None and lm_path.strip().lower() != "none"
        if an_lm and not Path(lm_path).is_file():
            raise click.BadParameter(f"{lm_path} is not a file (give an ARPA or KenLM binary file, "
                                     f"or 'none')", param_hint="'--lm'")
        if decoder == "greedy" and (an_lm or hotwords):
            raise click.UsageError("--lm and --hotwords need --decoder beam")
        if decoder is None and (an_lm or hotwords):
            decoder = "beam"  # as before: --lm or --hotwords mean beam search, whatever the config says
        # config_options is applied inside this wrapper: its --config and --set are still in kwargs
        config = load_config(kwargs.get("config_path"), kwargs.get("overrides") or (), {
            "decode.decoder": decoder, "decode.beam_width": beam_width, "decode.lm": lm_path,
            "decode.alpha": alpha, "decode.beta": beta, "decode.token_min_logp": token_min_logp,
            "decode.beam_prune_logp": beam_prune_logp, "decode.hotwords": hotwords,
            "decode.hotword_weight": hotword_weight,
        })
        return f(*args, decode=options_from_config(config.decode), **kwargs)

    return wrapper


def implicit_default(flag: str | None, key: str) -> bool:
    """Whether the config's `key` (e.g. model.name) is the built-in default that nobody named:
    no flag, no --set, not in the --config file or its bases. Only such a model may fall back to a
    built-in one; a model the user named fails with the clear error instead."""
    if flag is not None:
        return False
    return key not in click.get_current_context().meta["w2v.named"]  # set by resolve_config


def load_ctc(config: Config, flag: str | None, device: str | None = None, dtype: str | None = None) -> Any:
    """The CTC model of model.name; the default falls back to the built-in `demo` offline."""
    from .models import load_ctc_model, load_with_fallback

    return load_with_fallback(load_ctc_model, config.model.name, ctc_fallback(config, flag),
                              device or config.inference.device, dtype or config.inference.dtype,
                              config.model.revision)


def ctc_fallback(config: Config, flag: str | None) -> str | None:
    """The built-in model the CTC default falls back to offline; None for a named model."""
    from .config import DEFAULT_CTC_MODEL

    return "demo" if config.model.name == DEFAULT_CTC_MODEL and implicit_default(flag, "model.name") else None


def ctc_model_config(config: Config, flag: str | None) -> Config:
    """`config` with the model load_ctc will load, decided without loading it: what
    transcribe's resume check compares earlier outputs with (outputs the offline fallback
    made are not taken as the hub model's, nor the reverse)."""
    import dataclasses

    from .models import would_fall_back

    fallback = ctc_fallback(config, flag)
    if not would_fall_back(config.model.name, fallback, config.model.revision):
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, name=fallback, revision=None))


@click.group(cls=W2VGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="w2v")
def cli() -> None:
    """Transcribe, evaluate, fine-tune and sanity-check wav2vec 2.0 models.

    \b
    Examples:
      w2v transcribe talk.wav
      w2v transcribe recordings/ --output-dir out --output-format json
      w2v ctc-loss talk.wav "HELLO WORLD" --json
      w2v pretrain-check --model patrickvonplaten/wav2vec2-base
      w2v config show --set inference.batch_size=8
    """


# -- transcribe ---------------------------------------------------------------------------


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="PATH...")
@model_options
@click.option("--batch-size", type=int, default=None, help="Chunks per forward pass.")
@click.option("--chunk-s", type=float, default=None, help="Seconds per chunk for long audio (default 20).")
@click.option("--stride-s", type=float, default=None, help="Seconds of context each side of a chunk (default 3).")
@click.option("--num-threads", type=int, default=None, help="CPU threads for the model (0 = one per core).")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="CPU model calls at once, sharing the threads (0 = auto: one per thread, up to 4, when there is enough work).")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False), default=None,
              help="Write <input stem>.<ext> per input here.")
@click.option("--output-format", "-f", type=click.Choice(OUTPUT_FORMATS), default="txt",
              show_default=True, help="Output format: files in --output-dir, else stdout (several inputs: txt, "
                                       "json as JSON Lines, ctm). json, srt, vtt, tsv and ctm have times.")
@click.option("--max-line-width", type=click.IntRange(1), default=None,
              help="srt/vtt: characters per subtitle line (default: no limit).")
@click.option("--max-words-per-line", type=click.IntRange(1), default=None,
              help="srt/vtt: words per subtitle line (default: no limit).")
@click.option("--max-line-count", type=click.IntRange(1), default=1, show_default=True,
              help="srt/vtt: lines per subtitle cue.")
@decoder_options
@click.option("--overwrite", is_flag=True,
              help="Redo inputs whose outputs in --output-dir were made with the same model and options.")
@config_options
def transcribe(inputs: tuple[str, ...], model: str | None, device: str | None, dtype: str | None,
               batch_size: int | None, chunk_s: float | None, stride_s: float | None,
               num_threads: int | None, workers: int | None, output_dir: str | None, output_format: str,
               overwrite: bool, max_line_width: int | None, max_words_per_line: int | None,
               max_line_count: int, decode: Any) -> None:
    """Transcribe audio files: greedy CTC decoding, or beam search with an n-gram LM.

    PATH may be a file, a folder (searched recursively for audio) or a glob pattern.
    With one input the transcript alone goes to stdout; with several, one
    `path<TAB>transcript` line each. Without --output-dir, another -f prints that format
    instead (several inputs: json as one record per line, ctm). A bad input is reported on
    stderr and the rest are still done; the exit status is then 1. With --output-dir,
    running the same command again skips the inputs already done with the same model and
    options.

    \b
    Examples:
      w2v transcribe talk.wav
      w2v transcribe 'calls/**/*.flac' --model ./my-finetuned-model > calls.tsv
      w2v transcribe recordings/ -o out -f json
      w2v transcribe talk.wav -o subs -f srt --max-line-width 42 --max-line-count 2
      w2v transcribe talk.wav -f srt > talk.srt
      w2v transcribe recordings/ -f json | jq .text
      w2v transcribe talk.wav --decoder beam --lm lm.arpa --alpha 0.5 --beta 1.0
      torchrun --nproc_per_node 2 -m w2v_cli.cli transcribe recordings/ > all.tsv
    """
    from .distributed import current_shard, in_input_order
    from .timestamps import SubtitleOptions
    from .transcribe import expand_inputs, finished_inputs, transcribe_paths
    from .writers import get_writers

    config = resolve_config({
        "model.name": model, "inference.device": device, "inference.dtype": dtype,
        "inference.batch_size": batch_size, "inference.chunk_s": chunk_s,
        "inference.stride_s": stride_s, "inference.num_threads": num_threads,
        "inference.workers": workers,
    })
    shard = current_shard()  # under torchrun / accelerate launch: rank 0 reports for all
    config.inference.progress &= shard.is_main
    paths, bad_args = expand_inputs(list(inputs))
    failures = [(e.key, e.error) for e in bad_args] if shard.is_main else []
    for key, error in failures:
        click.echo(f"error: {key}: {error}", err=True)
    total = len(paths) + len(bad_args)
    stdout_format = None if output_dir or output_format == "txt" else output_format
    if stdout_format == "all" or (stdout_format in ("srt", "vtt", "tsv") and total > 1):
        raise click.UsageError(f"-f {output_format} without --output-dir prints one input's output on stdout; "
                               f"give --output-dir DIR to write one file per input and format")
    subtitles = SubtitleOptions(max_line_width, max_words_per_line, max_line_count)
    stdout_writer = get_writers(stdout_format, subtitles)[0] if stdout_format else None
    done = finished_inputs(paths, ctc_model_config(config, model), output_dir, output_format,
                           get_writers(output_format, subtitles), decode=decode) if output_dir and not overwrite else {}
    if done and shard.is_main:
        click.echo(f"skipping {len(done)} of {len(paths)} inputs already transcribed in {output_dir} "
                   f"with this model and options (--overwrite redoes them)", err=True)
    if paths:
        loaded = None if len(done) == len(paths) else load_ctc(
            config, model, shard.device(config.inference.device))
        single = total == 1
        results = transcribe_paths(loaded, paths, config, output_dir, output_format, done, shard=shard,
                                   decode=decode, subtitles=subtitles, records=stdout_writer is not None)
        for result in in_input_order(shard, results, len(paths)):
            if result.error is not None:
                failures.append((result.key, result.error))
                click.echo(f"error: {result.key}: {result.error}", err=True)
            elif stdout_writer is not None and stdout_format == "json" and not single:
                click.echo(json.dumps(result.record, ensure_ascii=False))  # JSON Lines
            elif stdout_writer is not None:
                click.echo(stdout_writer.format(result.record), nl=False)
            elif single:
                click.echo(result.text)
            else:
                click.echo(f"{result.key}\t{result.text}")
    if failures:
        click.echo(f"{len(failures)} of {total} inputs failed", err=True)
        sys.exit(1)


# -- eval ---------------------------------------------------------------------------------


@cli.command("eval")
@click.option("--dataset", "-d", default=None, metavar="SPEC",
              help="Manifest, folder (LibriSpeech, TIMIT, audio + .txt), hf:<repo>[:<config>][:<split>] "
                   "or librispeech_dummy.")
@model_options
@click.option("--output-dir", "-o", type=click.Path(file_okay=False), default=None,
              help="Write utterances.jsonl, summary.json, report.md, ref.trn and hyp.trn here.")
@click.option("--audio-column", default=None, help="Audio column of an hf: dataset or manifest (default: guessed).")
@click.option("--text-column", default=None, help="Transcript column of an hf: dataset or manifest (default: guessed).")
@click.option("--max-items", type=int, default=None, help="Evaluate only the first N utterances.")
@click.option("--batch-size", type=int, default=None, help="Chunks per forward pass.")
@decoder_options
@config_options
def eval_cmd(dataset: str | None, model: str | None, device: str | None, dtype: str | None,
             output_dir: str | None, audio_column: str | None, text_column: str | None,
             max_items: int | None, batch_size: int | None, decode: Any) -> None:
    """Measure the WER and CER of a CTC model on a dataset.

    References and transcripts are normalised alike before scoring (lower-case,
    punctuation and extra whitespace removed by default; see the text: section of the
    config). Prints a summary table; bad items are skipped and named on stderr. Exit
    status 1 only when nothing could be scored.

    \b
    Examples:
      w2v eval --dataset ../shared/data/speech/manifest.tsv --model ./my-model
      w2v eval --dataset librispeech_dummy -o eval-out
      w2v eval --dataset LibriSpeech/test-clean --max-items 200
      w2v eval --dataset hf:./my-saved-dataset:test --text-column sentence
      w2v eval --dataset test.tsv --model ./my-model --lm domain.arpa --alpha 0.5 --beta 1.0
    """
    from .data import load_dataset
    from .evaluate import evaluate, format_table, summary_rows

    config = resolve_config({
        "eval.dataset": dataset, "eval.output_dir": output_dir, "model.name": model,
        "inference.device": device, "inference.dtype": dtype, "inference.batch_size": batch_size,
        "data.audio_column": audio_column, "data.text_column": text_column, "data.max_items": max_items,
    })
    data = load_dataset(config.eval.dataset or config.data.eval, config.data)
    logger.info("dataset %s: %d utterances, %.2f h", data.name, len(data.utterances), data.duration_s / 3600)
    loaded = load_ctc(config, model)
    result = evaluate(loaded, data, config, config.eval.output_dir or None, decode=decode)
    for uid, reason in result.skipped:
        click.echo(f"skipped: {uid}: {reason}", err=True)
    if result.skipped:
        click.echo(f"{len(result.skipped)} of {len(result.skipped) + result.utterances} items skipped", err=True)
    click.echo(format_table(summary_rows(result)))


# -- ctc-loss -----------------------------------------------------------------------------


@cli.command("ctc-loss")
@click.argument("audio", type=click.Path(dir_okay=False))
@click.argument("text")
@model_options
@click.option("--reduction", type=click.Choice(["sum", "mean"]), default=None,
              help="Loss reduction (default: the model's own, 'sum' for wav2vec2-base-960h).")
@click.option("--unk", is_flag=True, help="Map characters outside the vocabulary to <unk> instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@config_options
def ctc_loss_cmd(audio: str, text: str, model: str | None, device: str | None, dtype: str | None,
                 reduction: str | None, unk: bool, as_json: bool) -> None:
    """Compute the CTC loss of TEXT for AUDIO under a CTC model.

    The figure equals transformers' `model(input_values, labels=labels).loss`.
    TEXT is the transcript, or @FILE to read it from a file.

    \b
    Examples:
      w2v ctc-loss talk.wav "HELLO WORLD"
      w2v ctc-loss talk.wav @talk.txt --reduction mean --json
    """
    from .audio import load_audio
    from .ctc import ctc_loss
    from .errors import DataError

    config = resolve_config({"model.name": model, "inference.device": device, "inference.dtype": dtype})
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"transcript file {text[1:]} cannot be read: {e}") from None
    loaded = load_ctc(config, model)
    samples = load_audio(audio, loaded.sample_rate, config.audio.block_s)
    result = ctc_loss(loaded, samples, text, reduction, unk)
    if as_json:
        record = {"loss": result.loss, "reduction": result.reduction, "frames": result.frames,
                  "labels": result.labels, "repeats": result.repeats, "feasible": result.feasible,
                  "audio": audio, "text": result.text, "model": loaded.name}
        click.echo(json.dumps(record, ensure_ascii=False))
    else:
        loss = "inf" if result.loss is None else f"{result.loss:.4f}"
        click.echo(f"{loss}\t({result.reduction}; {result.frames} frames, {result.labels} labels, "
                   f"{'feasible' if result.feasible else 'INFEASIBLE: too few frames'})")


# -- pretrain-check -----------------------------------------------------------------------


@cli.command("pretrain-check")
@click.option("--model", "-m", default=None,
              help="Wav2Vec2ForPreTraining model (default patrickvonplaten/wav2vec2-base).")
@click.option("--audio", default=None, type=click.Path(dir_okay=False),
              help="Recording to check on (default: a bundled LibriSpeech utterance).")
@click.option("--mask-prob", type=float, default=None, help="Share of frames starting a masked span (default 0.2).")
@click.option("--mask-length", type=int, default=None, help="Frames per masked span (default 2).")
@click.option("--seed", type=int, default=None, help="Seed for the mask and negatives (default 0).")
@click.option("--threshold", type=float, default=None, help="Pass when masked cosine similarity exceeds this (default 0.5).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON.")
@config_options
def pretrain_check_cmd(model: str | None, audio: str | None, mask_prob: float | None,
                       mask_length: int | None, seed: int | None, threshold: float | None,
                       device: str | None, as_json: bool) -> None:
    """Check a pretrained wav2vec2 with its own masked contrastive task.

    Masks spans of frames and measures the cosine similarity between the model's
    predictions (projected_states) and the quantized targets (projected_quantized_states)
    at the masked frames. Exit status 0 when it exceeds the threshold, 1 when not, so
    the check can gate a pipeline. A pretrained model scores well above 0.5; a random one
    near 0. The audio defaults to a bundled LibriSpeech recording (a held-out synthesized
    one for the built-in demo-pretrain model, which has heard only synthetic speech).

    \b
    Examples:
      w2v pretrain-check
      w2v pretrain-check --model ./my-pretraining-run --audio talk.wav --json
    """
    from .audio import load_audio
    from .models import load_pretraining_model
    from .pretrain_check import pretrain_check

    config = resolve_config({
        "check.model": model, "check.audio": audio, "check.mask_prob": mask_prob,
        "check.mask_length": mask_length, "check.seed": seed, "check.threshold": threshold,
        "inference.device": device,
    })
    from .config import DEFAULT_PRETRAINING_MODEL
    from .models import builtin_models, load_with_fallback

    fallback = ("demo-pretrain" if config.check.model == DEFAULT_PRETRAINING_MODEL
                and implicit_default(model, "check.model") else None)
    loaded = load_with_fallback(load_pretraining_model, config.check.model, fallback,
                                config.inference.device, config.model.revision)
    audio_path = config.check.audio
    if not audio_path and loaded.name == "demo-pretrain" and loaded.name in builtin_models():
        audio_path = str(SYNTH_AUDIO)
        logger.info("checking the built-in demo-pretrain model on the bundled synthesized recording %s: "
                    "it has heard only synthetic speech (pass --audio to check another)", SYNTH_AUDIO.name)
    audio_path = audio_path or str(BUNDLED_AUDIO)
    samples = load_audio(audio_path, loaded.sample_rate, config.audio.block_s)
    result = pretrain_check(loaded, samples, config.check, audio_path)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        rows = [
            ("model", result.model),
            ("audio", result.audio),
            ("frames (masked)", f"{result.frames} ({result.masked_frames})"),
            ("cosine, masked frames", f"{result.cosine_masked:.4f} ± {result.cosine_masked_std:.4f}"),
            ("cosine, unmasked frames", "-" if result.cosine_unmasked is None else f"{result.cosine_unmasked:.4f}"),
            ("cosine, shuffled targets", f"{result.cosine_shuffled:.4f}"),
            ("contrastive loss (sum)", f"{result.contrastive_loss:.4f}"),
            ("diversity loss", f"{result.diversity_loss:.4f}"),
            ("codevector perplexity", f"{result.codevector_perplexity:.2f}"),
            ("result", f"{'PASS' if result.passed else 'FAIL'} (masked cosine "
                       f"{'>' if result.passed else '<='} {result.threshold})"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            click.echo(f"{key:<{width}}  {value}")
    if not result.passed:
        sys.exit(1)


# -- check-data ---------------------------------------------------------------------------


@cli.command("check-data")
@click.argument("spec")
@click.option("--model", "-m", default=None,
              help="Take the vocabulary, labels and frames per second from this CTC model.")
@click.option("--vocab", "vocab_path", type=click.Path(dir_okay=False), default=None,
              help="Allowed characters: a vocab.json, or a text file with one per line.")
@click.option("--headers-only", is_flag=True,
              help="Read audio headers only: fast, but NaN samples, silence and duplicate audio go unseen.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_options
def check_data_cmd(spec: str, model: str | None, vocab_path: str | None, headers_only: bool,
                   as_json: bool) -> None:
    """Check a dataset before training or evaluating on it.

    Reports by utterance id: unreadable, corrupt, empty or NaN audio, empty transcripts,
    characters outside the vocabulary (--model or --vocab), utterances too short for their
    transcript under CTC, duplicate ids and audio, unusual sample rates and channel counts,
    and duration outliers. Without --model, CTC lengths are checked with one label per
    character against wav2vec2-base's feature encoder (320 samples per frame). Exit status
    1 when there are errors; warnings alone give 0.

    \b
    Examples:
      w2v check-data data/train.tsv
      w2v check-data data/train.tsv --model facebook/wav2vec2-base-960h --json | jq .errors
    """
    from .checks import (BASE_CONV_KERNEL, BASE_CONV_STRIDE, check_dataset, checks_for_model,
                         conv_frames, format_report, read_vocab_file)
    from .data import load_dataset

    config = resolve_config({"model.name": model})
    dataset = load_dataset(spec, config.data)
    options: dict[str, Any] = {"frames_for": conv_frames(BASE_CONV_KERNEL, BASE_CONV_STRIDE),
                               "sample_rate": config.audio.sample_rate}
    if model:
        loaded = load_ctc(config, model, "cpu", "fp32")
        options = checks_for_model(loaded)
    if vocab_path:
        options["vocab"] = read_vocab_file(vocab_path)
    report = check_dataset(dataset, decode_audio=not headers_only,
                           progress=config.inference.progress, **options)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        click.echo(format_report(report))
    if report.errors():
        sys.exit(1)


def training_options(f: Callable) -> Callable:
    """The flags `w2v finetune` and `w2v pretrain` share, plus --config/--set."""
    f = config_options(f)
    f = click.option("--stop-after", type=int, default=None,
                     help="Save and stop after this many steps; the schedule still plans the full run.")(f)
    f = click.option("--resume/--no-resume", default=None,
                     help="Continue from the latest checkpoint in the output folder (default: when there is one).")(f)
    f = click.option("--max-steps", type=int, default=None, help="Optimizer steps (train.max_steps).")(f)
    f = click.option("--model", "-m", default=None, help="Model or checkpoint to start from (model.name).")(f)
    f = click.option("--output-dir", "-o", default=None,
                     help="Where the model and checkpoints go (train.output_dir).")(f)
    return f


def exit_if_interrupted(state: Any) -> None:
    """A training run stopped by SIGINT/SIGTERM exits 130/143, as the shell would report it,
    so a calling script knows the run is not finished (its checkpoint is saved)."""
    if state.stopped_by in ("SIGINT", "SIGTERM"):
        sys.exit(130 if state.stopped_by == "SIGINT" else 143)


# -- finetune -----------------------------------------------------------------------------


@cli.command()
@training_options
def finetune(output_dir: str | None, model: str | None, max_steps: int | None, resume: bool | None,
             stop_after: int | None) -> None:
    """Fine-tune a wav2vec2 model for CTC speech recognition.

    Reads the training and eval sets named by data.train / data.eval (any source `w2v
    eval` reads), checks them, trains with accelerate, evaluates every
    train.eval_every steps and leaves in the output folder a model that `w2v
    transcribe --model DIR` takes, with checkpoints, logs and a training plot.
    Runs on several GPUs or processes with `accelerate launch` or `torchrun`.

    \b
    Examples:
      w2v finetune --config configs/timit.yaml --set data.train=/data/TIMIT/TRAIN
      w2v finetune --config configs/tiny.yaml --set data.train=train.tsv -o runs/tiny
      accelerate launch --num_processes 4 -m w2v_cli.cli finetune --config my.yaml
    """
    from .finetune import finetune as run_finetune

    config = resolve_config({"train.output_dir": output_dir, "model.name": model, "train.max_steps": max_steps})
    exit_if_interrupted(run_finetune(config, resume, stop_after))


# -- pretrain -----------------------------------------------------------------------------


@cli.command()
@training_options
def pretrain(output_dir: str | None, model: str | None, max_steps: int | None, resume: bool | None,
             stop_after: int | None) -> None:
    """Pretrain a wav2vec2 model with the contrastive task (no transcripts needed).

    From scratch (model.architecture) or continued from a checkpoint (model.name), on
    any data source `w2v eval` reads. The output folder works with `w2v pretrain-check
    --model DIR` and as the model.name `w2v finetune` starts from.

    \b
    Examples:
      w2v pretrain --config configs/demo-pretrain.yaml --set data.train=corpus/train.tsv
      torchrun --nproc_per_node 2 -m w2v_cli.cli pretrain --config my.yaml
    """
    from .pretrain import pretrain as run_pretrain

    config = resolve_config({"train.output_dir": output_dir, "model.name": model, "train.max_steps": max_steps})
    exit_if_interrupted(run_pretrain(config, resume, stop_after))


# -- align --------------------------------------------------------------------------------


ALIGNMENT_FORMATS = ["json", "tsv", "textgrid"]  # writers.ALIGNMENT_WRITERS; listed here so --help stays instant


@cli.command("align")
@click.argument("audio", required=False, type=click.Path(dir_okay=False))
@click.argument("text", required=False)
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="Align every row of a TSV/CSV/JSONL manifest (audio path and text columns) instead.")
@model_options
@click.option("--format", "-f", "fmt", type=click.Choice(ALIGNMENT_FORMATS), default="json", show_default=True,
              help="Output format.")
@click.option("--output", "-o", type=click.Path(), default=None,
              help="File to write (default stdout); with --manifest a folder for <id>.<ext> per row.")
@click.option("--unk", is_flag=True, help="Map characters outside the vocabulary to <unk> instead of failing.")
@click.option("--batch-size", type=int, default=None, help="Chunks per forward pass.")
@config_options
def align_cmd(audio: str | None, text: str | None, manifest: str | None, model: str | None,
              device: str | None, dtype: str | None, fmt: str, output: str | None, unk: bool,
              batch_size: int | None) -> None:
    """Find when each word and character of a known transcript is spoken.

    CTC forced alignment: the most likely path of TEXT through the model's frames.
    Gives start and end times (seconds) and a score (mean probability of the aligned
    token over its frames) per word and character, as JSON, TSV (milliseconds) or a
    Praat TextGrid. TEXT may be @FILE to read it from a file. With --manifest, a bad
    row is reported on stderr and the rest are still done; the exit status is then 1.

    \b
    Examples:
      w2v align talk.wav "HELLO WORLD"
      w2v align talk.wav @talk.txt -f textgrid -o talk.TextGrid
      w2v align --manifest data/test.tsv -f tsv -o alignments/
    """
    from .align import align_sources
    from .data import load_dataset
    from .errors import DataError
    from .inference import AudioSource, file_source
    from .writers import ALIGNMENT_WRITERS, write_atomic

    if manifest and (audio or text):
        raise click.UsageError("give AUDIO and TEXT, or --manifest, not both")
    if not manifest and not (audio and text):
        raise click.UsageError("give AUDIO and TEXT (or --manifest FILE)")
    if manifest and not output:
        raise click.UsageError("--manifest needs --output DIR for its <id>.<ext> files")
    config = resolve_config({"model.name": model, "inference.device": device, "inference.dtype": dtype,
                             "inference.batch_size": batch_size})
    if text is not None and text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"transcript file {text[1:]} cannot be read: {e}") from None
    dataset = load_dataset(manifest, config.data) if manifest else None
    loaded = load_ctc(config, model)
    sr = loaded.sample_rate
    failures = 0
    if dataset is not None:
        items = [(AudioSource(u.id, lambda u=u: u.blocks(sr, config.audio.block_s), u.duration_s), u.text)
                 for u in dataset.utterances]
        for uid, reason in dataset.skipped:  # rows the manifest reader already refused
            failures += 1
            click.echo(f"error: {uid}: {reason}", err=True)
    else:
        items = [(file_source(audio, sr, config.audio.block_s), text)]
    total = len(items) + failures
    writer = ALIGNMENT_WRITERS[fmt]()
    for result in align_sources(loaded, items, config.inference, unk):
        if isinstance(result, tuple):
            failures += 1
            click.echo(f"error: {result[0]}: {result[1]}", err=True)
            continue
        formatted = writer.format(result.record(loaded.name))
        if manifest:
            write_atomic(Path(output) / f"{result.key.replace(os.sep, '_')}.{writer.extension}", formatted)
        elif output:
            write_atomic(output, formatted)
        else:
            click.echo(formatted, nl=False)
    if failures:
        click.echo(f"{failures} of {total} inputs failed", err=True)
        sys.exit(1)


# -- build-lm -------------------------------------------------------------------------------


@cli.command("build-lm")
@click.argument("text_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="ARPA file to write.")
@click.option("--order", "-n", type=click.IntRange(1, 9), default=3, show_default=True, help="n-gram order.")
@click.option("--case", type=click.Choice(["keep", "upper", "lower"]), default="keep", show_default=True,
              help="Case the text to match the model's vocabulary (upper for wav2vec2-base-960h).")
@click.option("--vocab", "vocab_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Word list (one per line, e.g. /usr/share/dict/words) whose words the text lacks "
                   "join the LM with the smallest probability, so the beam search may spell them.")
@config_options
def build_lm_cmd(text_file: str, output: str, order: int, case: str, vocab_file: str | None) -> None:
    """Build a word n-gram language model from a text file, for `transcribe --lm`.

    One sentence per line, words split at whitespace. Modified Kneser-Ney smoothing,
    the same probabilities as KenLM's `lmplz -o ORDER`, written as ARPA.

    \b
    Examples:
      w2v build-lm domain.txt -o domain.arpa --order 4 --case upper
      w2v build-lm domain.txt -o domain.arpa --case upper --vocab /usr/share/dict/words
      w2v transcribe talk.wav --lm domain.arpa --alpha 0.5 --beta 1.0
    """
    from .lm import build_lm

    stats = build_lm(text_file, output, order, case, vocab_file)
    counts = ", ".join(f"{n}-grams {c}" for n, c in enumerate(stats.ngrams, 1))
    click.echo(f"{output}: {stats.sentences} sentences, {stats.tokens} words; {counts}")


# -- export -------------------------------------------------------------------------------


@cli.command("export")
@click.argument("model")
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--lm", "lm_path", default=None,
              help="n-gram LM to bundle (ARPA, .arpa.gz or KenLM binary); default: MODEL's own "
                   "language_model/; 'none' for none.")
@click.option("--alpha", type=float, default=None, help="LM weight to store (default: the LM's attrs.json, else 0.5).")
@click.option("--beta", type=float, default=None, help="Word bonus to store (default: the LM's attrs.json, else 1.5).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT_DIR if it exists.")
@config_options
def export_cmd(model: str, output_dir: str, lm_path: str | None, alpha: float | None, beta: float | None,
               overwrite: bool) -> None:
    """Write MODEL as a folder transformers loads with its LM.

    MODEL is a built-in name, a local folder or a hub id. OUTPUT_DIR gets the model, its
    processor and, when there is an LM, the Wav2Vec2ProcessorWithLM layout (alphabet.json;
    language_model/ with an uncompressed ARPA, unigrams.txt and attrs.json) that
    `Wav2Vec2ProcessorWithLM.from_pretrained` and the transformers ASR pipeline read; the
    command prints the decode arguments that match w2v's beam search.

    \b
    Examples:
      w2v export demo demo-hf
      w2v export runs/my-model my-model-hf --lm domain.arpa --alpha 0.6 --beta 1.0
    """
    from .export import export_model

    result = export_model(model, output_dir, lm_path, alpha, beta, overwrite)
    if result.lm is None:
        click.echo(f"{result.output_dir}: model and processor, no language model")
        return
    kwargs = ", ".join(f"{k}={v:g}" for k, v in result.decode_kwargs.items())
    click.echo(f"{result.output_dir}: model, processor and language model {result.lm.name} "
               f"(alpha {result.alpha:g}, beta {result.beta:g})")
    click.echo(f"decode as w2v does: pyctcdecode's BeamSearchDecoderCTC.load_from_dir('{result.output_dir}')"
               f".decode_beams(logits[0].numpy(), {kwargs})[0][0] (not .decode, which prunes the beams' "
               f"history), or Wav2Vec2ProcessorWithLM.from_pretrained('{result.output_dir}')"
               f".batch_decode(logits.numpy(), {kwargs}) (transformers 5.24 and earlier: 5.25's "
               "from_pretrained is broken upstream, and v6 drops the class)")


# -- config -------------------------------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Inspect the resolved configuration."""


@config_group.command("show")
@config_options
def config_show() -> None:
    """Print the resolved config (defaults < --config < --set) as YAML.

    \b
    Example:
      w2v config show --config configs/tiny.yaml --set train.max_steps=100
    """
    click.echo(resolve_config({}).to_yaml(), nl=False)


def main() -> None:
    """The `w2v` console script: the command, then a fast exit (see `exit_now`)."""
    try:
        cli(prog_name="w2v")  # click's standalone mode ends with SystemExit(exit code)
        code: Any = 0
    except SystemExit as e:
        code = e.code
    exit_now(code)


def exit_now(code: Any) -> None:
    """End the process with `code` (as ``sys.exit`` takes it) once the command is done,
    without Python tearing its objects down one by one.

    After a model run that teardown is most of a second of nothing useful -- freeing a few
    hundred MB of tensors and every module's objects, which the OS reclaims at once anyway:
    `w2v transcribe` of the 79 shared recordings took 0.97 s (fp32) and 1.1 s (bf16) from the
    command's return to the process's end, 0.1 s with this (AMD EPYC, 2 cores, 2026-12-04).
    What a normal exit does that matters still happens first: the atexit handlers run
    (logging's flush, those of libraries and of ``weakref.finalize``), and stdout and stderr
    are flushed -- a failed flush (a closed pipe) gives exit status 120, as Python's own exit
    does. Files the commands write are closed (or renamed into place) before they return. If
    a non-daemon thread is still running, which a normal exit would wait for, the normal exit
    runs."""
    import atexit
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream
            if stream is sys.stdout and status == 0:
                status = 120
    os._exit(status)


if __name__ == "__main__":
    main()
