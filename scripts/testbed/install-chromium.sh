#!/usr/bin/env bash
# Install the real browser the console tests drive: Debian's chromium and chromium-driver
# (Selenium talks to chromedriver, which starts a headless Chromium per test session).
# Idempotent: returns at once when both binaries are present.  Prints the two paths.
set -euo pipefail

have_all() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null
}

if ! have_all; then
  echo "[install-chromium] apt-get install chromium chromium-driver" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
fi
have_all || { echo "chromium/chromedriver missing after install" >&2; exit 1; }
echo "$(command -v chromium) $(command -v chromedriver)"
