"""Model loading: hub ids, local folders and built-in names, offline-first.

``from_pretrained`` on an uncached hub id with no network spends 20+ seconds in retries
before failing. We look in the local Hugging Face cache first (``local_files_only``), then
check in a few seconds whether the hub can be reached at all, and only then download; when
it cannot, the error says which model, why, and what to pass instead.

Both checkpoint layouts load: ``pytorch_model.bin`` with the 2021 weight-norm names
(``weight_g``/``weight_v``, renamed by transformers on load; read with ``weights_only``)
and ``model.safetensors`` + ``processor_config.json`` from transformers 5. Remote code is
never trusted.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import ModelNotAvailableError

logger = logging.getLogger("w2v")

# Built-in models ship as package data: w2v_cli/assets/models/<name>/.
BUILTIN_DIR = Path(__file__).parent / "assets" / "models"
HUB_TIMEOUT_S = 3.0  # how long we wait to learn whether the hub answers
UNREACHABLE_TTL_S = 60.0  # a failed probe is believed this long (one command may ask twice)
_unreachable: dict[tuple[str, int], float] = {}  # (host, port) -> when a probe last failed


def builtin_models() -> dict[str, Path]:
    """Built-in model names and their folders (those that are installed)."""
    if not BUILTIN_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUILTIN_DIR.iterdir()) if (p / "config.json").is_file()}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout_s: float = HUB_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub (or the configured HTTPS proxy) opens in time.

    A failure is remembered for UNREACHABLE_TTL_S, so a command that asks twice (e.g.
    `transcribe -o DIR` checks which model would run before loading it) waits at most once.
    """
    target = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = target or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urlparse(target if "://" in target else f"http://{target}")
    port = url.port or (443 if url.scheme == "https" else 80)
    key = (url.hostname or "", port)
    failed_at = _unreachable.get(key)
    if failed_at is not None and time.monotonic() - failed_at < UNREACHABLE_TTL_S:
        return False
    if _probe(key, timeout_s):
        _unreachable.pop(key, None)
        return True
    _unreachable[key] = time.monotonic()
    return False


def _probe(key: tuple[str, int], timeout_s: float) -> bool:
    host, port = key
    # The name lookup runs in a daemon thread: getaddrinfo ignores socket timeouts, and a
    # broken resolver can hang for much longer than timeout_s.
    found: list = []
    lookup = threading.Thread(target=lambda: found.append(_resolve(host, port)), daemon=True)
    started = time.monotonic()
    lookup.start()
    lookup.join(timeout_s)
    if not found or found[0] is None:
        return False
    left = max(timeout_s - (time.monotonic() - started), 0.1)
    try:
        with socket.create_connection(found[0], timeout=left):
            return True
    except OSError:
        return False


def _resolve(host: str, port: int) -> tuple[str, int] | None:
    try:
        *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return address[0], address[1]
    except (OSError, IndexError):
        return None


def _not_available(name: str, why: str) -> ModelNotAvailableError:
    builtins = ", ".join(builtin_models()) or "none installed"
    return ModelNotAvailableError(
        f"model '{name}' is not available: it is not a local folder, not in the Hugging Face "
        f"cache, and {why}. Pass --model with a local folder written by save_pretrained or "
        f"`w2v finetune`, a built-in model ({builtins}), or connect to the hub once so it is "
        f"cached."
    )


def is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir() or name in builtin_models()


def local_path(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    return builtin_models().get(name)


def from_pretrained(cls: Any, name: str, revision: str | None = None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` for a local folder, built-in name or hub id, failing fast offline."""
    kwargs.setdefault("trust_remote_code", False)
    path = local_path(name)
    if path is not None:
        if not (path / "config.json").is_file() and not (path / "preprocessor_config.json").is_file():
            raise ModelNotAvailableError(
                f"{path} is a folder but holds no model (no config.json); pass a folder "
                f"written by save_pretrained or `w2v finetune`"
            )
        try:
            return cls.from_pretrained(str(path), **kwargs)
        except pickle.UnpicklingError:
            # torch's message advises weights_only=False, i.e. running the file's code: never
            raise ModelNotAvailableError(
                f"{path}: its pytorch_model.bin holds pickled objects besides tensors, which w2v refuses "
                f"to load (unpickling can run code). If you trust the file, convert it to model.safetensors "
                f"(load it and call save_pretrained) in a separate environment"
            ) from None
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotAvailableError(f"model folder {name} not found; check the path")
    try:
        return cls.from_pretrained(name, revision=revision, local_files_only=True, **kwargs)
    except OSError:
        pass  # not cached: try the hub below
    if hub_offline():
        raise _not_available(name, "HF_HUB_OFFLINE is set")
    if not hub_reachable():
        raise _not_available(name, f"the hub cannot be reached (no answer in {HUB_TIMEOUT_S:.0f} s)")
    logger.info("downloading %s from the hub", name)
    try:
        return cls.from_pretrained(name, revision=revision, **kwargs)
    except OSError as e:
        raise ModelNotAvailableError(f"model '{name}' could not be loaded from the hub: {e}") from None


WITH_LM_PROCESSOR = "Wav2Vec2ProcessorWithLM"


@functools.lru_cache(maxsize=32)
def hub_language_model_dir(name: str, revision: str | None = None) -> Path | None:
    """`language_model/` of a hub model whose processor is transformers'
    Wav2Vec2ProcessorWithLM (its preprocessor or processor config says so), as the ASR
    pipeline would use it: from the local cache, else downloaded (only those files) when the
    hub answers. None for local folders, built-in names, models without an LM, and when the
    LM can be neither found nor fetched (with one warning). Looks only at the cache for the
    processor config, which loading the model has put there; no network for a model
    without an LM. Once per model and revision per process."""
    if local_path(name) is not None or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None
    try:
        from huggingface_hub import snapshot_download, try_to_load_from_cache
    except ImportError:
        return None
    snapshot = None
    for filename in ("preprocessor_config.json", "processor_config.json"):
        found = try_to_load_from_cache(name, filename, revision=revision)
        if not isinstance(found, str):
            continue
        try:
            processor_class = json.loads(Path(found).read_text(encoding="utf-8")).get("processor_class")
        except (OSError, ValueError, AttributeError):
            continue
        if processor_class == WITH_LM_PROCESSOR:
            snapshot = Path(found).parent
            break
    if snapshot is None:
        return None
    lm_dir = snapshot / "language_model"
    if lm_dir.is_dir() and any(lm_dir.iterdir()):
        return lm_dir
    why = ("HF_HUB_OFFLINE is set" if hub_offline()
           else "the hub cannot be reached" if not hub_reachable() else None)
    if why is None:
        logger.info("downloading %s's n-gram language model (language_model/) from the hub", name)
        try:
            lm_dir = Path(snapshot_download(name, revision=revision, allow_patterns=["language_model/*"])) / "language_model"
        except Exception as e:  # noqa: BLE001 - any hub or disk failure: decode without the LM, and say so
            why = f"its download failed ({type(e).__name__}: {e})"
        else:
            if lm_dir.is_dir() and any(lm_dir.iterdir()):
                return lm_dir
            why = "the hub's copy has no files in language_model/"
    logger.warning("model %s comes with an n-gram LM on the hub (%s), which is not in the local cache and %s: "
                   "decoding without it; pass --lm FILE to use one", name, WITH_LM_PROCESSOR, why)
    return None


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelNotAvailableError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelNotAvailableError("--device mps was asked for but MPS is not available; use --device cpu")
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matmul instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def dtype_names() -> dict[str, Any]:
    """The --dtype names and the torch dtypes they stand for."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_dtype(dtype: str, device: str) -> Any:
    """'auto' is bf16 on CPUs with bf16 instructions and on GPUs that support it, fp16 on
    other GPUs, fp32 elsewhere."""
    import torch

    named = dtype_names()
    if dtype != "auto":
        return named[dtype]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


_DEFAULT_THREADS: int | None = None  # torch's own default: OMP_NUM_THREADS, else one per physical core


def configure_threads(num_threads: int = 0) -> int:
    """Set torch's intra-op threads and return the count.

    ``num_threads > 0`` is taken as given. 0 means torch's default (OMP_NUM_THREADS when
    set -- torchrun sets it to 1 per process -- else one thread per physical core), shared
    out among the processes a launcher started on this machine (LOCAL_WORLD_SIZE) when
    OMP_NUM_THREADS is not set: processes that each spin one thread per core would only
    fight over the cores.
    """
    import torch

    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    threads = num_threads if num_threads > 0 else _DEFAULT_THREADS
    if num_threads <= 0 and not os.environ.get("OMP_NUM_THREADS"):
        try:
            processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError:
            processes = 1
        threads = max(1, _DEFAULT_THREADS // processes)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


@dataclass
class LoadedModel:
    """A model ready for inference, with what is needed to feed and decode it."""

    name: str  # as asked for
    model: Any  # transformers PreTrainedModel, in eval mode, on `device`
    processor: Any  # Wav2Vec2Processor (CTC) or Wav2Vec2FeatureExtractor (pretraining)
    device: str
    dtype: Any  # torch.dtype

    @property
    def sample_rate(self) -> int:
        fe = getattr(self.processor, "feature_extractor", self.processor)
        return int(fe.sampling_rate)

    @property
    def do_normalize(self) -> bool:
        fe = getattr(self.processor, "feature_extractor", self.processor)
        return bool(getattr(fe, "do_normalize", True))


def load_ctc_model(
    name: str, device: str = "auto", dtype: str = "fp32", revision: str | None = None
) -> LoadedModel:
    """Load a CTC model and its processor (feature extractor + tokenizer)."""
    import torch
    from transformers import AutoModelForCTC, Wav2Vec2Processor

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    processor = from_pretrained(Wav2Vec2Processor, name, revision)
    model = from_pretrained(AutoModelForCTC, name, revision)
    model.to(device=device, dtype=torch_dtype).eval()
    if device == "cpu" and torch_dtype != torch.float32:
        from .conv_guard import guard_convs

        guard_convs(model)  # conv1d shapes that torch's CPU bf16 kernels get wrong run in float32
    logger.debug("loaded %s on %s in %s", name, device, torch_dtype)
    return LoadedModel(name, model, processor, device, torch_dtype)


def load_pretraining_model(
    name: str, device: str = "auto", revision: str | None = None
) -> LoadedModel:
    """Load a Wav2Vec2ForPreTraining model and its feature extractor (fp32)."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    device = pick_device(device)
    feature_extractor = from_pretrained(Wav2Vec2FeatureExtractor, name, revision)
    model = from_pretrained(Wav2Vec2ForPreTraining, name, revision)
    model.to(device=device, dtype=torch.float32).eval()
    return LoadedModel(name, model, feature_extractor, device, torch.float32)


def in_hub_cache(name: str, revision: str | None = None) -> bool:
    """Whether the Hugging Face cache holds hub model `name` (its config.json)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str)
    except Exception:  # noqa: BLE001 - a malformed name or cache: "not cached", load says why
        return False


def would_fall_back(name: str, fallback: str | None, revision: str | None = None) -> bool:
    """Whether ``load_with_fallback(load, name, fallback)`` would load `fallback`: `name` is a
    hub id that is not cached while the hub is off or does not answer. Decided without
    loading, for what must know the model first (transcribe's resume check)."""
    if not fallback or fallback not in builtin_models() or local_path(name) is not None:
        return False
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or in_hub_cache(name, revision):
        return False
    return hub_offline() or not hub_reachable()


def load_with_fallback(load: Callable[..., LoadedModel], name: str, fallback: str | None,
                       *args: Any, **kwargs: Any) -> LoadedModel:
    """``load(name, ...)``; when `name` is not available and `fallback` is an installed
    built-in model, ``load(fallback, ...)`` with one line on stderr saying so and why.

    The CLI passes a fallback only for a default model the user did not name: an
    explicitly named model never falls back, it fails with the clear error.
    """
    try:
        return load(name, *args, **kwargs)
    except ModelNotAvailableError:
        if not fallback or fallback not in builtin_models():
            raise
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub cannot be reached"
    logger.warning("%s is not in the local cache and %s: using the built-in '%s' model instead "
                   "(trained on synthetic speech only; see %s)", name, why, fallback,
                   builtin_models()[fallback] / "README.md")
    return load(fallback, *args, **kwargs)


def build_wav2vec2(model_cls: Any, architecture: dict, seed: int, **overrides: Any) -> Any:
    """A fresh `model_cls` from `model.architecture` (Wav2Vec2Config fields), its random
    weights drawn after seeding torch with `seed`. Unknown fields are an error naming the
    closest valid one; impossible values (a negative size, heads not dividing the hidden
    size) name the architecture."""
    import difflib

    import torch

    from transformers import Wav2Vec2Config

    from .errors import ConfigError

    valid = set(Wav2Vec2Config().to_dict())
    for key in architecture:
        if key not in valid:
            match = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f"; did you mean '{match[0]}'?" if match else ""
            raise ConfigError(f"model.architecture: unknown Wav2Vec2Config field '{key}'{hint}")
    torch.manual_seed(seed)
    try:
        return model_cls(Wav2Vec2Config(**{**architecture, **overrides}))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"model.architecture is not a valid Wav2Vec2Config: {e}") from None
