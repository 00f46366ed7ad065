"""The one config loader every command uses.

Precedence, lowest first: the dataclass defaults below < a YAML file (``--config FILE``)
< repeated ``--set section.key=value`` < the command's own flags.

A dict becomes typed dataclasses once, here at the edge (as faster-whisper does with its
options); everything past this module sees ``Config`` attributes, never raw dicts.
Unknown keys and wrong types are errors that name the key, where it came from (file and
line where known) and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

DEFAULT_CTC_MODEL = "facebook/wav2vec2-base-960h"
DEFAULT_PRETRAINING_MODEL = "patrickvonplaten/wav2vec2-base"


@dataclass
class ModelConfig:
    # Hub id, local folder (save_pretrained / w2v finetune output) or built-in name.
    name: str = DEFAULT_CTC_MODEL
    # Hub revision (branch, tag or commit); null = the default branch.
    revision: str | None = None
    # Wav2Vec2Config fields for a fresh, randomly initialised model (training from scratch
    # or tests); when set, `name` is only used for its processor unless it is empty.
    architecture: dict | None = None


@dataclass
class AudioConfig:
    sample_rate: int = 16000  # Hz; every input is resampled to this (soxr)
    block_s: float = 60.0  # seconds read per block from long files (bounds memory)


@dataclass
class InferenceConfig:
    device: str = "auto"  # auto|cpu|cuda|mps
    dtype: str = "auto"  # auto|fp32|bf16|fp16; auto = bf16 on CPUs with bf16 instructions and GPUs, else fp32
    batch_size: int = 4  # chunks per forward pass
    chunk_s: float = 20.0  # seconds of audio per model call for long inputs
    stride_s: float = 3.0  # seconds of context on each side of a chunk, dropped after the call
    num_threads: int = 0  # torch intra-op threads; 0 = one per physical core
    workers: int = 0  # model calls run at once on CPU, sharing num_threads; 0 = auto, 1 = one at a time
    progress: bool = True  # progress bar on stderr


@dataclass
class TextConfig:
    """Text normalisation applied to references (and hypotheses, when scoring)."""

    case: str = "lower"  # lower|upper|keep
    remove_punctuation: bool = True  # drop punctuation except the characters in keep_chars
    keep_chars: str = "'"  # punctuation that survives remove_punctuation
    ignore_chars: str = ""  # characters deleted before anything else
    unicode_form: str = "NFC"  # NFC|NFD|NFKC|NFKD|none; NFD turns Korean syllables into jamo


@dataclass
class DataConfig:
    train: str = ""  # dataset spec (see `w2v eval --help`)
    eval: str = ""  # dataset spec
    audio_column: str = ""  # for hf: datasets; empty = guess
    text_column: str = ""  # for hf: datasets and manifests; empty = guess
    labels: str = "chars"  # chars|phonemes (TIMIT .PHN folded to 39 phones)
    min_duration_s: float = 0.0  # drop shorter utterances (0 = no limit)
    max_duration_s: float = 0.0  # drop longer utterances (0 = no limit)
    max_items: int = 0  # use only the first N utterances (0 = all)
    on_bad_item: str = "skip"  # skip|stop


@dataclass
class TrainConfig:
    output_dir: str = "runs/finetune"
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_eps: float = 1e-8
    warmup_steps: int = 500
    lr_schedule: str = "linear"  # linear|cosine|constant (after warm-up)
    max_steps: int = 0  # 0 = run `epochs` epochs
    epochs: int = 10
    batch_size: int = 8  # utterances per batch (ignored when batch_audio_s > 0)
    batch_audio_s: float = 0.0  # total seconds of audio per batch (0 = use batch_size)
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    freeze_feature_encoder: bool = True
    # with freeze_feature_encoder: false, freeze it after this many steps (0 = never): it adapts
    # early, then each step skips the conv encoder's backward (~1.4x faster on the demo model)
    freeze_feature_encoder_after_steps: int = 0
    mask_time_prob: float = 0.05  # SpecAugment time masking: share of frames masked
    mask_time_length: int = 10  # frames per masked span
    mask_feature_prob: float = 0.0  # SpecAugment channel masking: share of channels masked
    mask_feature_length: int = 10  # channels per masked span
    layerdrop: float = 0.0
    # null = the model's own; a number sets hidden, attention, activation and feature-projection
    # dropout (a small model that underfits learns faster without; dropout also costs step time)
    dropout: float | None = None
    # fp32|bf16|fp16 mixed precision, or auto: bf16 where the hardware computes it (a CPU with
    # AVX512-BF16 or AMX, a GPU that supports it), fp16 on other GPUs, fp32 on other CPUs
    dtype: str = "fp32"
    # float32 values under 1.2e-38 taken as zero on CPUs (torch.set_flush_denormal): training on
    # synthetic speech reaches them and x86 computes them slowly (demo recipe: up to 1.3x the rate)
    flush_denormal: bool = True
    seed: int = 0
    log_every: int = 10  # steps
    eval_every: int = 500  # steps (0 = only at the end)
    save_every: int = 500  # steps (0 = only at the end)
    keep_last: int = 2  # checkpoints kept besides the best
    num_workers: int = 0  # data-loader worker processes


@dataclass
class PretrainConfig:
    mask_time_prob: float = 0.65
    mask_time_length: int = 10  # frames per masked span
    num_negatives: int = 100
    gumbel_temp_start: float = 2.0
    gumbel_temp_end: float = 0.5
    gumbel_temp_decay: float = 0.999995  # per step
    diversity_loss_weight: float = 0.1
    feature_penalty: float = 10.0


@dataclass
class CheckConfig:
    """`w2v pretrain-check`: the masked contrastive check of Wav2Vec2ForPreTraining."""

    model: str = DEFAULT_PRETRAINING_MODEL
    audio: str = ""  # empty = the bundled example recording
    mask_prob: float = 0.2
    mask_length: int = 2  # frames per masked span
    num_negatives: int = 100
    seed: int = 0
    threshold: float = 0.5  # pass when masked cosine similarity exceeds this


@dataclass
class DecodeConfig:
    """CTC decoding of `transcribe` and `eval` (their --decoder, --lm, ... flags override it)."""

    decoder: str = "auto"  # auto|greedy|beam; auto = beam when there is an LM or hotwords, else greedy
    beam_width: int = 100  # beams kept per frame
    lm: str = ""  # n-gram LM file (ARPA, .arpa.gz, KenLM binary); empty = the model's own, if any; none = no LM
    alpha: float | None = None  # LM weight; null = the model's LM's attrs.json, else 0.5
    beta: float | None = None  # word insertion bonus; null = the model's LM's attrs.json, else 1.5
    # beam pruning (natural-log probabilities, pyctcdecode's); null = the model's LM's attrs.json, else -5 / -10
    token_min_logp: float | None = None  # a frame's characters below this are not tried (its best always is)
    beam_prune_logp: float | None = None  # beams this far below the best are dropped
    hotwords: str = ""  # comma-separated words or phrases for beam search to favour
    hotword_weight: float = 10.0  # how much to favour them


@dataclass
class EvalConfig:
    dataset: str = ""  # dataset spec
    output_dir: str = ""  # write utterances.jsonl, summary.json, report.md here
    worst: int = 10  # worst utterances shown in report.md


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    check: CheckConfig = field(default_factory=CheckConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# Allowed values for string keys that are really enums.
CHOICES: dict[str, tuple[str, ...]] = {
    "inference.device": ("auto", "cpu", "cuda", "mps"),
    "inference.dtype": ("auto", "fp32", "bf16", "fp16"),
    "text.case": ("lower", "upper", "keep"),
    "text.unicode_form": ("NFC", "NFD", "NFKC", "NFKD", "none"),
    "data.labels": ("chars", "phonemes"),
    "data.on_bad_item": ("skip", "stop"),
    "train.lr_schedule": ("linear", "cosine", "constant"),
    "train.dtype": ("auto", "fp32", "bf16", "fp16"),
    "decode.decoder": ("auto", "greedy", "beam"),
}


def _line_numbers(text: str) -> dict[str, int]:
    """Map 'section' and 'section.key' to their 1-based line in a YAML document."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key_node, value_node in root.value:
        section = str(key_node.value)
        lines[section] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for sub_key, _ in value_node.value:
                lines[f"{section}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return lines


class _Source:
    """Where a value came from, for error messages."""

    def __init__(self, name: str, lines: dict[str, int] | None = None):
        self.name = name
        self.lines = lines or {}

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.name}, line {line}" if line else self.name


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; valid sections: {', '.join(choices)}"


def _coerce(key: str, value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against the field's type; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
    expected = annotation
    if expected is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        # PyYAML (YAML 1.1) reads `3e-4` as a string; it is meant as a number.
        try:
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: a 400-digit integer
            number = None
        if number is not None and not math.isfinite(number):
            raise ConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
        if number is not None:
            return number
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads `revision: 1234` as an int; a string is what is meant.
        return str(value)
    if expected is dict and isinstance(value, dict):
        return value
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        choices = CHOICES.get(key)
        if choices and value not in choices:
            raise ConfigError(
                f"{where}: '{key}' must be one of {', '.join(choices)}, got {value!r}"
            )
        return value
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ConfigError(
        f"{where}: '{key}' expects {expected.__name__}, got {type(value).__name__} {shown}"
    )


def _apply(config: Config, data: Any, source: _Source, named: set[str] | None = None) -> None:
    """Merge a nested dict {section: {key: value}} into `config`, validating as it goes; the
    'section.key' of each key set go into `named` when given."""
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source.name}: expected a mapping of sections (model:, inference:, ...), "
            f"got {type(data).__name__}"
        )
    sections = [f.name for f in dataclasses.fields(Config)]
    for section, values in data.items():
        section = str(section)
        if section not in sections:
            raise ConfigError(
                f"{source.where(section)}: unknown section '{section}'{_closest(section, sections + ['base'])}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source.where(section)}: section '{section}' must be a mapping of keys, "
                f"got {type(values).__name__} {values!r}"
            )
        target = getattr(config, section)
        hints = typing.get_type_hints(type(target))
        for key, value in values.items():
            key = str(key)
            dotted = f"{section}.{key}"
            if key not in hints:
                match = difflib.get_close_matches(key, list(hints), n=1, cutoff=0.5)
                hint = (
                    f"; did you mean '{section}.{match[0]}'?"
                    if match
                    else f"; valid keys in '{section}': {', '.join(hints)}"
                )
                raise ConfigError(f"{source.where(dotted)}: unknown key '{dotted}'{hint}")
            setattr(target, key, _coerce(dotted, value, hints[key], source.where(dotted)))
            if named is not None:
                named.add(dotted)


def parse_set(item: str) -> dict[str, dict[str, Any]]:
    """Turn 'section.key=value' into {section: {key: value}}; the value is read as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. inference.batch_size=8")
    dotted, raw = item.split("=", 1)
    if dotted.count(".") != 1:
        raise ConfigError(f"--set {item!r}: the key must be section.key, e.g. train.learning_rate")
    section, key = dotted.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return {section: {key: value}}


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int]]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass an existing YAML file to --config")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from None
    try:
        data = yaml.safe_load(text)
        lines = _line_numbers(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}; fix the syntax there") from None
    except RecursionError:  # PyYAML recurses once per nesting level
        raise ConfigError(f"{path}: YAML nested too deeply to read; a config needs two levels") from None
    return data, lines


def read_config_chain(path: str | Path) -> list[tuple[Any, _Source]]:
    """A config file and the files its top-level `base:` names, in the order they apply: the
    first base first, `path` last. `base: other.yaml` (relative to the naming file's folder)
    makes that file's values the starting point; this file's keys override them one by one."""
    chain: list[tuple[Any, _Source]] = []
    seen: list[Path] = []
    current: Path | None = Path(path)
    while current is not None:
        resolved = current.resolve()
        if resolved in seen:
            loop = " -> ".join(str(p) for p in [*seen, resolved])
            raise ConfigError(f"config files name each other as base in a loop ({loop}); "
                              "remove one of those base: lines")
        seen.append(resolved)
        data, lines = read_yaml(current)
        source = _Source(str(current), lines)
        following = None
        if isinstance(data, dict) and "base" in data:
            data = dict(data)
            base = data.pop("base")
            if not isinstance(base, str) or not base.strip():
                raise ConfigError(f"{source.where('base')}: 'base' must be the path of another config "
                                  f"file (relative to this one's folder), got {base!r}")
            following = Path(base) if Path(base).is_absolute() else current.parent / base
            if not following.is_file():
                raise ConfigError(f"{source.where('base')}: base config {following} not found (a relative "
                                  f"path is read from {current.parent}); fix the path or remove base:")
        chain.append((data, source))
        current = following
    return chain[::-1]


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
    named: set[str] | None = None,
) -> Config:
    """Resolve the config: defaults < the YAML file's bases (``base:``) < the YAML file < ``--set``
    overrides < flags.

    ``flags`` maps 'section.key' to a value; None values (flags the user did not give)
    are ignored. ``named``, when given, receives the 'section.key' of every key the file, its
    bases or an override set (not flags): what the user named rather than left at its default.
    """
    config = Config()
    if path is not None:
        for data, source in read_config_chain(path):
            _apply(config, data, source, named)
    for item in overrides:
        _apply(config, parse_set(item), _Source(f"--set {item}"), named)
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".")
        _apply(config, {section: {key: value}}, _Source(f"flag for {dotted}"))
    return config
