"""TIMIT phone labels: the 61 phones of the .PHN files folded to the 39 of Lee & Hon (1989),
the set every TIMIT phone-error-rate figure is reported on."""

from __future__ import annotations

# 61 -> 39 folding (Lee & Hon, "Speaker-independent phone recognition using hidden Markov
# models", 1989); None drops the phone (the glottal stop q).
FOLD_61_TO_39: dict[str, str | None] = {
    "aa": "aa", "ao": "aa", "ae": "ae", "ah": "ah", "ax": "ah", "ax-h": "ah", "aw": "aw",
    "ay": "ay", "b": "b", "ch": "ch", "d": "d", "dh": "dh", "dx": "dx", "eh": "eh",
    "er": "er", "axr": "er", "ey": "ey", "f": "f", "g": "g", "hh": "hh", "hv": "hh",
    "ih": "ih", "ix": "ih", "iy": "iy", "jh": "jh", "k": "k", "l": "l", "el": "l",
    "m": "m", "em": "m", "n": "n", "en": "n", "nx": "n", "ng": "ng", "eng": "ng",
    "ow": "ow", "oy": "oy", "p": "p", "r": "r", "s": "s", "sh": "sh", "zh": "sh",
    "t": "t", "th": "th", "uh": "uh", "uw": "uw", "ux": "uw", "v": "v", "w": "w",
    "y": "y", "z": "z",
    # closures, pauses and silences all become one silence symbol
    "bcl": "sil", "dcl": "sil", "gcl": "sil", "kcl": "sil", "pcl": "sil", "tcl": "sil",
    "h#": "sil", "pau": "sil", "epi": "sil",
    "q": None,
}


def fold_phones(phones: list[str]) -> list[str]:
    """Fold 61-phone labels to 39; consecutive silences (a closure after a pause, say)
    merge into one. Unknown phones are kept as they are, lower-cased."""
    folded: list[str] = []
    for phone in phones:
        p = phone.lower()
        target = FOLD_61_TO_39.get(p, p)
        if target is None:
            continue
        if target == "sil" and folded and folded[-1] == "sil":
            continue
        folded.append(target)
    return folded
