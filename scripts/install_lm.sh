#!/usr/bin/env bash
# Install the optional beam-search extra into a virtualenv without moving numpy:
# pyctcdecode (CTC beam search), pygtrie (its one real dependency) and kenlm (n-gram LM
# scoring, compiled here from its PyPI sdist with cmake and g++: about a minute).
#
#   bash scripts/install_lm.sh [VENV] [--lmplz]     # VENV defaults to .venv
#
# Why not `pip install .[lm]` alone: every pyctcdecode release declares numpy<2 (it runs
# fine on numpy 2), and letting pip resolve that pin downgrades numpy under torch, pandas
# and datasets. So pyctcdecode goes in with --no-deps, and the [lm] extra lists only kenlm
# and pygtrie. The script refuses to finish if numpy's version changed.
#
# --lmplz also builds KenLM's lmplz and build_binary into VENV/bin (apt: boost, zlib, bz2,
# lzma dev packages; a few minutes). `w2v build-lm` does not need them: it writes the same
# probabilities as lmplz (tests/test_decoding.py compares them when lmplz is on PATH).
# Idempotent: what imports or exists already is left alone.
set -euo pipefail

VENV=".venv"
LMPLZ=0
for arg in "$@"; do
    case "$arg" in
        --lmplz) LMPLZ=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) VENV="$arg" ;;
    esac
done
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "install_lm: no python at $PY (create the virtualenv first, e.g. make install)" >&2
    exit 1
fi

KENLM_SPEC="kenlm==0.3.0"
numpy_before="$("$PY" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo none)"

if ! "$PY" -c "import pygtrie" 2>/dev/null; then
    "$PY" -m pip install -q "pygtrie>=2.1,<3"
fi
if ! "$PY" -c "import pyctcdecode" 2>/dev/null; then
    echo "install_lm: pip install --no-deps pyctcdecode (its numpy<2 pin is not applied)" >&2
    "$PY" -m pip install -q --no-deps "pyctcdecode==0.5.0"
fi
if ! "$PY" -c "import kenlm" 2>/dev/null; then
    echo "install_lm: building $KENLM_SPEC from source (cmake + g++, about a minute)" >&2
    "$PY" -m pip install -q --no-deps "$KENLM_SPEC"
fi

numpy_after="$("$PY" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo none)"
if [ "$numpy_before" != "$numpy_after" ]; then
    echo "install_lm: numpy changed from $numpy_before to $numpy_after; reinstall numpy==$numpy_before" >&2
    exit 1
fi
"$PY" -c "import pyctcdecode, kenlm, numpy; print('install_lm: pyctcdecode, kenlm OK; numpy', numpy.__version__)" >&2

if [ "$LMPLZ" = 1 ] && [ ! -x "$VENV/bin/lmplz" ]; then
    bash "$(dirname "$0")/apt_install.sh" install_lm cmake g++ libboost-program-options-dev \
        libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" "$KENLM_SPEC"
    tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
    src="$(echo "$work"/kenlm-*/)"
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    make -C "$work/build" -j "$(nproc)" lmplz build_binary >/dev/null
    cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$VENV/bin/"
    echo "install_lm: lmplz and build_binary in $VENV/bin" >&2
fi
