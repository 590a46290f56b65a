#!/usr/bin/env bash
# Set up (first run only) and run the whole platform locally on the bundled real candles.
# Extra arguments go to `kubetrade up`, e.g. scripts/up.sh --duration 60
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kubetrade up "$@"
