#!/usr/bin/env bash
# Install the speech synthesizers used by scripts/make_synth_corpus.py.
#
#   bash scripts/install_tts.sh [VENV]      # VENV defaults to .venv
#
# Idempotent: apt packages are installed only when missing, hibari-tts only when it
# does not import. Runs as root (no sudo). hibari-tts pulls in onnxruntime, protobuf and
# flatbuffers; it must not move torch/numpy/transformers, so if pip would change any
# already-installed package we fall back to --no-deps plus only the missing requirements.
set -euo pipefail

VENV="${1:-.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "install_tts: no python at $PY (create the virtualenv first)" >&2
    exit 1
fi

# --- system packages: espeak-ng (voices), sox (inspection/conversion), wordnet-base
#     (the demo recipe's extra training text, scripts/wordnet_text.py) and wamerican (the
#     word list of the demo LM's vocabulary, scripts/measure_demo.sh) ---------------------
bash "$(dirname "$0")/apt_install.sh" install_tts espeak-ng sox wordnet-base wamerican

# --- hibari-tts (offline neural English voice) into the virtualenv ---------------------
if "$PY" -c "import hibari" 2>/dev/null; then
    echo "install_tts: hibari-tts already installed in $VENV" >&2
    exit 0
fi

# Ask pip what it would do; a line "Would install ..." listing a package that is already
# present at another version means an up/downgrade, which we refuse.
plan="$("$PY" -m pip install --dry-run --quiet --report - hibari-tts 2>/dev/null \
        | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print(" ".join(i["metadata"]["name"].lower().replace("_","-") for i in r["install"]))' \
        || true)"
installed="$("$PY" -m pip list --format=freeze 2>/dev/null | cut -d= -f1 | tr 'A-Z_' 'a-z-')"
clash=""
for name in $plan; do
    if grep -qx "$name" <<<"$installed"; then clash="$clash $name"; fi
done

if [ -z "$plan" ] || [ -n "$clash" ]; then
    echo "install_tts: pip would change:${clash:- (plan unknown)}; installing hibari-tts with --no-deps" >&2
    "$PY" -m pip install --no-deps hibari-tts
    # onnxruntime is the only runtime requirement besides numpy (already present).
    if ! "$PY" -c "import onnxruntime" 2>/dev/null; then
        "$PY" -m pip install --no-deps onnxruntime flatbuffers protobuf
    fi
else
    echo "install_tts: pip install hibari-tts (adds:$(printf ' %s' $plan))" >&2
    "$PY" -m pip install hibari-tts
fi
"$PY" -c "import hibari, onnxruntime; print('install_tts: hibari', hibari.__version__, 'onnxruntime', onnxruntime.__version__)" >&2
