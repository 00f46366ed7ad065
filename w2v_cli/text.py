"""Text normalisation, shared by `w2v eval` (scoring) and `w2v finetune` (targets)."""

from __future__ import annotations

import re
import unicodedata

from .config import TextConfig

_SPACES = re.compile(r"\s+")


def normalize_text(text: str, options: TextConfig | None = None) -> str:
    """Apply the configured normalisation: ignore_chars, Unicode form, case, punctuation,
    whitespace (collapsed and stripped, always).

    Punctuation is every character whose Unicode category starts with P or S (so '.', '-',
    '"', '$'), except those in keep_chars; it becomes a space so 'well-known' gives two words.
    """
    options = options or TextConfig()
    for ch in options.ignore_chars:
        text = text.replace(ch, "")
    if options.unicode_form != "none":
        text = unicodedata.normalize(options.unicode_form, text)
    if options.case == "lower":
        text = text.lower()
    elif options.case == "upper":
        text = text.upper()
    if options.remove_punctuation:
        keep = set(options.keep_chars)
        text = "".join(
            " " if ch not in keep and unicodedata.category(ch)[0] in "PS" else ch for ch in text
        )
    return _SPACES.sub(" ", text).strip()


def describe_normalization(options: TextConfig) -> str:
    """One line saying what normalize_text does with these options, for reports."""
    parts = []
    if options.ignore_chars:
        parts.append(f"delete {options.ignore_chars!r}")
    if options.unicode_form != "none":
        parts.append(f"Unicode {options.unicode_form}")
    if options.case != "keep":
        parts.append(f"{options.case}-case")
    if options.remove_punctuation:
        kept = f" except {options.keep_chars!r}" if options.keep_chars else ""
        parts.append(f"punctuation removed{kept}")
    parts.append("whitespace collapsed")
    return ", ".join(parts)
