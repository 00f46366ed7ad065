"""CTC beam search with an optional n-gram LM and hotwords, through pyctcdecode and kenlm.

Both are an optional extra (``pip install .[lm]``; ``make install-lm`` or
``scripts/install_lm.sh`` installs them without touching numpy: pyctcdecode 0.5 pins
``numpy<2`` in its metadata but runs on numpy 2, and letting pip resolve that pin downgrades
numpy under pandas and datasets). The greedy path never imports them.

A model folder may bring its own LM in ``language_model/`` (transformers'
Wav2Vec2ProcessorWithLM layout: one KenLM file -- ARPA, gzipped ARPA or binary -- and
``attrs.json`` with alpha and beta). The CLI's default decoder, "auto", then decodes with it, as
transformers' ASR pipeline does for such models; ``--decoder greedy`` or ``--lm none`` does not.
The built-in ``demo`` model ships one.

Shallow fusion as pyctcdecode scores it: ``log p_ctc + alpha * log p_lm + beta * words``
(natural-log LM scores; alpha weighs the LM, beta rewards each word to offset the LM's
preference for short outputs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import W2VError

logger = logging.getLogger("w2v")

INSTALL_HINT = "install them with `make install-lm` (or `bash scripts/install_lm.sh .venv`)"


@dataclass
class BeamOptions:
    beam_width: int = 100  # beams kept per frame (pyctcdecode's default)
    lm_path: str | None = None  # ARPA (plain or .gz) or KenLM binary n-gram LM; None = no LM
    alpha: float | None = None  # LM weight; None = the bundled LM's attrs.json, else 0.5
    beta: float | None = None  # word insertion bonus; None = the bundled LM's, else 1.5
    hotwords: list[str] = field(default_factory=list)  # words or phrases to favour, may be out of the LM
    hotword_weight: float = 10.0  # how much to favour them
    bundled_lm: bool = True  # with decoder "auto"/"beam" and no lm_path: the model folder's own LM
    # pyctcdecode's other two LM attributes; a bundled LM's attrs.json sets them
    unk_score_offset: float = -10.0  # log-score added for a word the LM does not know
    score_boundary: bool = True  # score sentence start and end with the LM (<s>, </s>)
    # pyctcdecode's pruning: characters below token_min_logp (natural-log probability) in a frame
    # are not tried, unless one is the frame's best; beams whose score falls beam_prune_logp below
    # the best are dropped. None = the bundled LM's attrs.json, else pyctcdecode's -5 and -10.
    token_min_logp: float | None = None
    beam_prune_logp: float | None = None


DEFAULT_ALPHA, DEFAULT_BETA = 0.5, 1.5
DEFAULT_TOKEN_MIN_LOGP, DEFAULT_BEAM_PRUNE_LOGP = -5.0, -10.0  # pyctcdecode's
PRUNING_DEFAULTS = {"token_min_logp": DEFAULT_TOKEN_MIN_LOGP, "beam_prune_logp": DEFAULT_BEAM_PRUNE_LOGP}
LM_SUFFIXES = (".arpa", ".arpa.gz", ".bin", ".binary")


@dataclass
class BundledLM:
    """An n-gram LM shipped in a model folder's `language_model/` (transformers'
    Wav2Vec2ProcessorWithLM layout: one KenLM file, attrs.json with alpha, beta and, as
    pyctcdecode saves it, unk_score_offset and score_boundary; w2v also reads the pruning
    thresholds token_min_logp and beam_prune_logp there, tuned with the weights)."""

    path: Path
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    unk_score_offset: float = -10.0
    score_boundary: bool = True
    token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP
    beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP


def bundled_lm(model_name: str) -> BundledLM | None:
    """The LM in `<model folder>/language_model/` of a local folder or built-in model, or of
    a hub model whose processor is Wav2Vec2ProcessorWithLM (models.hub_language_model_dir:
    cached, else fetched when the hub answers); None when there is none."""
    import json

    from .models import hub_language_model_dir, local_path

    folder = local_path(model_name)
    lm_dir = folder / "language_model" if folder else hub_language_model_dir(model_name)
    if lm_dir is None or not lm_dir.is_dir():
        return None
    files = sorted(f for f in lm_dir.iterdir() if f.is_file() and f.name.endswith(LM_SUFFIXES))
    if not files:
        return None
    if len(files) > 1:
        raise W2VError(f"{lm_dir} holds {len(files)} language models ({', '.join(f.name for f in files)}); "
                       "keep one, or pass --lm FILE")
    attrs = {}
    if (lm_dir / "attrs.json").is_file():
        try:
            attrs = json.loads((lm_dir / "attrs.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise W2VError(f"{lm_dir / 'attrs.json'} is not valid JSON ({e}); fix or delete it") from None
    defaults = BundledLM(files[0])
    try:
        found = BundledLM(files[0], float(attrs.get("alpha", defaults.alpha)), float(attrs.get("beta", defaults.beta)),
                          float(attrs.get("unk_score_offset", defaults.unk_score_offset)),
                          bool(attrs.get("score_boundary", defaults.score_boundary)),
                          float(attrs.get("token_min_logp", defaults.token_min_logp)),
                          float(attrs.get("beam_prune_logp", defaults.beam_prune_logp)))
    except (TypeError, ValueError) as e:
        raise W2VError(f"{lm_dir / 'attrs.json'}: a value is not a number ({e}); fix or delete it") from None
    for key in PRUNING_DEFAULTS:
        if getattr(found, key) > 0:
            raise W2VError(f"{lm_dir / 'attrs.json'}: {key} is a log-probability threshold and must be "
                           f"0 or below, not {getattr(found, key):g}; fix it or delete the key")
    return found


def beam_search_available() -> bool:
    """Whether pyctcdecode and kenlm, which beam search with an LM needs, are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("pyctcdecode", "kenlm"))


@dataclass
class BeamResult:
    text: str
    word_frames: list[tuple[str, int, int]]  # (word, first frame, end frame exclusive)


def ctc_labels(tokenizer: Any, vocab_size: int) -> list[str]:
    """pyctcdecode's alphabet for a wav2vec2 CTC vocabulary: the blank (pad) token is '',
    the word delimiter '|' is ' ' and <unk> is pyctcdecode's '⁇'; other tokens as they are
    (as transformers' Wav2Vec2ProcessorWithLM passes them)."""
    labels = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    labels = ["" if i == tokenizer.pad_token_id else t for i, t in enumerate(labels)]
    delimiter = getattr(tokenizer, "word_delimiter_token", None) or "|"
    labels = [" " if t == delimiter else t for t in labels]
    return ["⁇" if t == tokenizer.unk_token else t for t in labels]


@contextlib.contextmanager
def _c_stderr_silenced(enabled: bool) -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for a while: kenlm's C++ writes its notes there,
    past Python's sys.stderr. Used only before the engine's threads start."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_pyctcdecode() -> Any:
    try:
        import pyctcdecode
    except ImportError:
        raise W2VError(f"--decoder beam needs pyctcdecode (and kenlm for --lm); {INSTALL_HINT}") from None
    return pyctcdecode


def lm_unigrams(lm_path: Path) -> list[str] | None:
    """The words of an LM: read from an ARPA file, or for a KenLM binary from a
    `unigrams.txt` beside it (transformers' Wav2Vec2ProcessorWithLM layout); None if neither."""
    from .lm import is_arpa, read_arpa_unigrams

    if is_arpa(lm_path):
        return read_arpa_unigrams(lm_path)
    for sidecar in (lm_path.with_name(lm_path.name + ".unigrams.txt"), lm_path.parent / "unigrams.txt"):
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8").split()
    return None


class BeamDecoder:
    """A pyctcdecode decoder built once for a tokenizer and BeamOptions."""

    def __init__(self, tokenizer: Any, vocab_size: int, options: BeamOptions):
        pyctcdecode = _import_pyctcdecode()
        self.options = options
        labels = ctc_labels(tokenizer, vocab_size)
        lm_model, unigrams = None, None
        if options.lm_path:
            lm_model, unigrams = self._load_lm(Path(options.lm_path), labels)
        # Built by hand rather than with build_ctcdecoder: that reloads unigrams only for
        # paths ending in .arpa and logs alphabet guesses we have already settled.
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC
        from pyctcdecode.language_model import LanguageModel

        language_model = None
        if lm_model is not None:
            alpha = DEFAULT_ALPHA if options.alpha is None else options.alpha
            beta = DEFAULT_BETA if options.beta is None else options.beta
            language_model = LanguageModel(lm_model, unigrams, alpha=alpha, beta=beta,
                                           unk_score_offset=options.unk_score_offset,
                                           score_boundary=options.score_boundary)
        self.decoder = BeamSearchDecoderCTC(Alphabet(labels, False), language_model)

    @staticmethod
    def _load_lm(path: Path, labels: list[str]) -> tuple[Any, list[str] | None]:
        if not path.is_file():
            raise W2VError(f"language model {path} not found; give an ARPA or KenLM binary file "
                           f"(make one with `w2v build-lm corpus.txt -o lm.arpa`)")
        try:
            import kenlm
        except ImportError:
            raise W2VError(f"--lm needs kenlm; {INSTALL_HINT}") from None
        try:
            config = kenlm.Config()
            verbose = logger.isEnabledFor(logging.DEBUG)
            config.show_progress = verbose  # its bar of stars on stderr
            with _c_stderr_silenced(not verbose):  # "Loading the LM will be faster if ..."
                model = kenlm.Model(str(path), config)
        except (OSError, RuntimeError) as e:
            raise W2VError(f"language model {path} cannot be read by kenlm: {e}") from None
        unigrams = lm_unigrams(path)
        if unigrams is None:
            logger.warning("no unigram list for %s (KenLM binary without unigrams.txt beside it): "
                           "words the LM does not know are not penalised", path)
        else:
            alphabet = set("".join(labels))
            spellable = sum(1 for w in unigrams if set(w) <= alphabet)
            words = [w for w in unigrams if w not in ("<s>", "</s>", "<unk>")]
            if words and spellable < 0.5 * len(words):
                logger.warning(
                    "only %d of the LM's %d words can be spelled with the model's vocabulary; "
                    "is the LM's case the vocabulary's? (`w2v build-lm --case upper` for an "
                    "upper-case vocabulary)", spellable, len(words))
        return model, unigrams

    def decode(self, log_probs: np.ndarray) -> BeamResult:
        """Best beam for one recording's log-probs (frames, vocab)."""
        if len(log_probs) == 0:
            return BeamResult("", [])
        o = self.options
        beams = self.decoder.decode_beams(
            np.asarray(log_probs, dtype=np.float32), beam_width=o.beam_width,
            beam_prune_logp=DEFAULT_BEAM_PRUNE_LOGP if o.beam_prune_logp is None else o.beam_prune_logp,
            token_min_logp=DEFAULT_TOKEN_MIN_LOGP if o.token_min_logp is None else o.token_min_logp,
            hotwords=o.hotwords or None, hotword_weight=o.hotword_weight)
        text, _, word_frames, _, _ = beams[0]
        return BeamResult(text, [(w, int(s), int(e)) for w, (s, e) in word_frames])


@dataclass
class DecodeOptions:
    # greedy|beam|auto; greedy is exactly processor.batch_decode(logits.argmax(-1)); auto is
    # beam when there is an LM (lm_path, or the model's bundled one) or hotwords, else greedy
    decoder: str = "greedy"
    beam: BeamOptions = field(default_factory=BeamOptions)


def options_from_config(cfg: Any) -> DecodeOptions:
    """DecodeOptions from the config's `decode` section (a config.DecodeConfig), checked."""
    from .errors import ConfigError

    words = [w.strip() for w in cfg.hotwords.split(",") if w.strip()]
    lm = cfg.lm.strip()
    no_lm = lm.lower() == "none"
    lm_path = lm if lm and not no_lm else None
    if cfg.beam_width < 1:
        raise ConfigError(f"decode.beam_width must be at least 1, got {cfg.beam_width}")
    if lm_path and not Path(lm_path).is_file():
        raise ConfigError(f"decode.lm: {lm_path} is not a file; give an ARPA or KenLM binary file "
                          "(`w2v build-lm`), 'none', or nothing for the model's own LM")
    if cfg.decoder == "greedy" and (lm_path or words):
        raise ConfigError("decode.lm and decode.hotwords need decode.decoder beam or auto (or --decoder beam)")
    for key, default in PRUNING_DEFAULTS.items():
        value = getattr(cfg, key)
        if value is not None and value > 0:
            raise ConfigError(f"decode.{key} is a natural-log probability threshold: 0 or below (pyctcdecode's "
                              f"default {default:g}), got {value:g}")
    return DecodeOptions(cfg.decoder, BeamOptions(cfg.beam_width, lm_path, cfg.alpha, cfg.beta, words,
                                                  cfg.hotword_weight, bundled_lm=not no_lm,
                                                  token_min_logp=cfg.token_min_logp,
                                                  beam_prune_logp=cfg.beam_prune_logp))


def resolve(options: DecodeOptions, model_name: str, warn: bool = True) -> DecodeOptions:
    """`options` with the decoder and LM settled for `model_name`: "auto" made greedy or
    beam, the model's bundled LM filled in where no LM was given, alpha and beta set. A
    bundled LM that cannot be used (pyctcdecode or kenlm missing) under "auto" means greedy,
    with one warning (unless `warn` is False); asked for with "beam" it is an error."""
    import dataclasses

    beam = options.beam
    decoder = options.decoder
    if decoder not in ("greedy", "beam", "auto"):
        raise W2VError(f"decoder must be 'greedy', 'beam' or 'auto', got {decoder!r}")
    bundled = bundled_lm(model_name) if decoder != "greedy" and beam.bundled_lm and not beam.lm_path else None
    if decoder == "auto":
        decoder = "beam" if beam.lm_path or beam.hotwords or bundled else "greedy"
        if bundled and not beam_search_available():
            if warn:
                logger.warning("model %s comes with an n-gram LM (%s), but pyctcdecode and kenlm are not "
                               "installed: greedy decoding; %s", model_name, bundled.path.name, INSTALL_HINT)
            decoder, bundled = ("beam" if beam.hotwords else "greedy"), None
    lm_path = beam.lm_path or (str(bundled.path) if bundled else None)  # bundled: only when beam
    alpha = beam.alpha if beam.alpha is not None else (bundled.alpha if bundled else DEFAULT_ALPHA)
    beta = beam.beta if beam.beta is not None else (bundled.beta if bundled else DEFAULT_BETA)
    own = bundled is not None and lm_path == str(bundled.path)
    extra = dict(unk_score_offset=bundled.unk_score_offset, score_boundary=bundled.score_boundary) if own else {}
    # the pruning thresholds: a flag or config key, else the model's own LM's attrs.json, else pyctcdecode's
    token_min_logp = (beam.token_min_logp if beam.token_min_logp is not None
                      else bundled.token_min_logp if own else DEFAULT_TOKEN_MIN_LOGP)
    beam_prune_logp = (beam.beam_prune_logp if beam.beam_prune_logp is not None
                       else bundled.beam_prune_logp if own else DEFAULT_BEAM_PRUNE_LOGP)
    return DecodeOptions(decoder, dataclasses.replace(beam, lm_path=lm_path, alpha=alpha, beta=beta,
                                                      token_min_logp=token_min_logp,
                                                      beam_prune_logp=beam_prune_logp, **extra))


class Decoder:
    """Turns the engine's Transcriptions into final text and, when asked, timed segments.

    Greedy text is the engine's own and is never touched; beam search re-decodes the kept
    log-probs of the whole recording (the chunks' kept frames, joined), as transformers'
    pipeline does with an LM decoder.
    """

    def __init__(self, loaded: Any, options: DecodeOptions | None = None, timestamps: bool = False):
        self.loaded = loaded
        self.options = resolve(options or DecodeOptions(), loaded.name)  # settled: what was used
        self.timestamps = timestamps
        self.beam = None
        if self.options.decoder == "beam":
            self.beam = BeamDecoder(loaded.processor.tokenizer, loaded.model.config.vocab_size, self.options.beam)

    @property
    def keep_log_probs(self) -> bool:
        """Whether the engine must keep per-frame log-probs (Engine(keep_log_probs=...))."""
        return self.beam is not None or self.timestamps

    def finish(self, result: Any) -> list[dict] | None:
        """Beam-decode `result` (a Transcription) in place; return its segments when
        timestamps are asked for, else None."""
        from .timestamps import frame_span_words, greedy_words, model_clock, segment_words

        if result.error is not None or (self.beam is None and not self.timestamps):
            return None  # greedy text as the engine gave it, no times asked for
        words = None
        clock = model_clock(self.loaded, result.frame_samples)
        if self.beam is not None:
            decoded = self.beam.decode(result.log_probs)
            result.text = decoded.text
            if self.timestamps:
                words = frame_span_words(decoded.word_frames, clock, result.log_probs)
        elif self.timestamps:
            words = greedy_words(result.frame_ids, self.loaded.processor.tokenizer, clock, result.log_probs)
        return None if words is None else segment_words(words)
