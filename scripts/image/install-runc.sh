#!/usr/bin/env bash
# Print the path of a runc for the image tests (tests/image run the built images with it, without a
# node): $KUBETRADE_RUNC if set, else one on PATH, else Debian's runc package, installed here.
# Idempotent: returns at once when one is there.
set -euo pipefail
if [ -n "${KUBETRADE_RUNC:-}" ]; then echo "$KUBETRADE_RUNC"; exit 0; fi
if ! command -v runc >/dev/null; then
  echo "[install-runc] apt-get install runc" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends runc >&2 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
         apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends runc >&2; }
fi
command -v runc
