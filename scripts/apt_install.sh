#!/usr/bin/env bash
# apt-get install those of the named Debian packages that are not installed yet (as root, no
# sudo); nothing when all are. Used by scripts/install_lm.sh and scripts/install_tts.sh.
#
#   bash scripts/apt_install.sh TAG PACKAGE...    # TAG starts the log line (the caller's name)
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: bash scripts/apt_install.sh TAG PACKAGE..." >&2
    exit 2
fi
tag="$1"
shift
missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "$tag: apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "$tag: $* already installed" >&2
fi
