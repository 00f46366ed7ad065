"""A CTC model and its n-gram LM as one folder that transformers and pyctcdecode load as they are.

w2v reads an LM in ``<model>/language_model/`` more loosely than transformers'
``Wav2Vec2ProcessorWithLM`` (pyctcdecode's ``load_from_dir``) does: a gzipped ARPA file (the
built-in ``demo`` ships one, to stay inside the package's size budget) and two pruning
thresholds in ``attrs.json`` that pyctcdecode's ``LanguageModel`` does not take as arguments.
``export_model`` writes the strict layout: the model and its processor files, ``alphabet.json``,
and ``language_model/`` with an uncompressed ARPA (or the KenLM binary as it is),
``unigrams.txt`` and an ``attrs.json`` holding only alpha, beta, unk_score_offset and
score_boundary -- what ``processor.save_pretrained`` of a ``Wav2Vec2ProcessorWithLM`` writes,
because that is what writes it. The pruning thresholds are decode-time arguments there
(``processor.batch_decode(logits, token_min_logp=..., beam_prune_logp=...)``); the result says
which to pass to decode as w2v does.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .decoding import BeamDecoder, BeamOptions, BundledLM, bundled_lm
from .errors import W2VError
from .models import from_pretrained, local_path


@dataclass
class ExportResult:
    output_dir: Path
    lm: Path | None  # the exported LM file inside output_dir, if any
    alpha: float | None = None
    beta: float | None = None
    # keyword arguments of Wav2Vec2ProcessorWithLM.batch_decode that decode as w2v does
    decode_kwargs: dict[str, float] = field(default_factory=dict)


def export_model(model_name: str, output_dir: str | Path, lm_path: str | None = None,
                 alpha: float | None = None, beta: float | None = None, overwrite: bool = False) -> ExportResult:
    """Write `model_name` (a local folder, built-in name or hub id) to `output_dir` in the layout
    transformers loads with ``Wav2Vec2ProcessorWithLM.from_pretrained`` and
    ``pipeline("automatic-speech-recognition", model=output_dir)``. The LM is `lm_path` if given
    ("none": no LM), else the model's own ``language_model/``; alpha and beta default to that
    LM's attrs.json. The folder is written beside `output_dir` and moved into place whole."""
    from transformers import AutoModelForCTC, Wav2Vec2Processor

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise W2VError(f"{out} exists and is not a folder; pick another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise W2VError(f"{out} exists and is not empty; pick another folder or pass --overwrite to replace it")
    processor = from_pretrained(Wav2Vec2Processor, model_name)
    model = from_pretrained(AutoModelForCTC, model_name)

    lm = _pick_lm(model_name, lm_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would stay on the final folder
        model.save_pretrained(tmp)
        result = ExportResult(out, None)
        if lm is None:
            processor.save_pretrained(tmp)
        else:
            result = _save_with_lm(processor, model.config.vocab_size, lm, alpha, beta, tmp, out)
        _drop_load_time_keys(tmp / "tokenizer_config.json")
        _copy_notices(local_path(model_name), lm if lm_path is None else None, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


NOTICES = ("README", "LICENSE", "LICENCE", "COPYING", "NOTICE", "ATTRIBUTION", "COPYRIGHT")


def _copy_notices(model_dir: Path | None, lm: BundledLM | None, tmp: Path) -> None:
    """The model card and licence/attribution files of a local model folder, and of its own
    language_model/ (`lm`; not of a folder an --lm file happens to sit in), go with the export:
    the built-in demo's card names its training data's sources, its LM folder holds the word
    list's copyright notice. The LM's go to the top folder: pyctcdecode's load_from_dir refuses
    a language_model/ with any file besides its three."""
    def notices(folder: Path) -> list[Path]:
        return [p for p in sorted(folder.iterdir()) if p.is_file() and any(w in p.name.upper() for w in NOTICES)]

    if model_dir is not None:
        for item in notices(model_dir):
            shutil.copy2(item, tmp / item.name)
    if lm is not None:
        for item in notices(lm.path.parent):
            name = item.name if not (tmp / item.name).exists() else f"language_model-{item.name}"
            shutil.copy2(item, tmp / name)


def _drop_load_time_keys(path: Path) -> None:
    """transformers 5 saves two loading arguments into tokenizer_config.json (is_local,
    local_files_only); a copy uploaded to the hub should not carry them."""
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if {"is_local", "local_files_only"} & config.keys():
        for key in ("is_local", "local_files_only"):
            config.pop(key, None)
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _pick_lm(model_name: str, lm_path: str | None) -> BundledLM | None:
    if lm_path is not None:
        if lm_path.lower() == "none":
            return None
        if not Path(lm_path).is_file():
            raise W2VError(f"language model {lm_path} not found; give an ARPA (plain or .gz) or KenLM binary file")
        return BundledLM(Path(lm_path))
    return bundled_lm(model_name)


def _save_with_lm(processor, vocab_size: int, lm: BundledLM, alpha: float | None, beta: float | None,
                  tmp: Path, out: Path) -> ExportResult:
    from transformers import Wav2Vec2ProcessorWithLM

    alpha = lm.alpha if alpha is None else alpha
    beta = lm.beta if beta is None else beta
    lm_file = lm.path
    scratch = Path(tempfile.mkdtemp(dir=tmp.parent, prefix=".lm-"))
    try:
        if lm_file.name.endswith(".gz"):
            # pyctcdecode's load_from_dir takes .arpa, .bin or .binary only
            plain = scratch / lm_file.name[: -len(".gz")]
            with gzip.open(lm_file, "rb") as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            lm_file = plain
        options = BeamOptions(lm_path=str(lm_file), alpha=alpha, beta=beta,
                              unk_score_offset=lm.unk_score_offset, score_boundary=lm.score_boundary)
        decoder = BeamDecoder(processor.tokenizer, vocab_size, options).decoder
        try:
            with_lm = Wav2Vec2ProcessorWithLM(processor.feature_extractor, processor.tokenizer, decoder)
        except ValueError as e:  # the decoder's alphabet lacks a token of the tokenizer
            raise W2VError(f"transformers refuses this model's vocabulary with the LM: {e}") from None
        # writes the processor files, alphabet.json and language_model/ (attrs.json, unigrams.txt,
        # a copy of the KenLM file)
        with_lm.save_pretrained(str(tmp))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ExportResult(out, out / "language_model" / lm_file.name, alpha, beta,
                        {"token_min_logp": lm.token_min_logp, "beam_prune_logp": lm.beam_prune_logp})
