#!/usr/bin/env bash
# Set up a development environment on a fresh machine: a virtualenv in .venv with
# kubetrade, the test bed and their pinned dependencies (requirements/dev.lock: the runtime
# pins of requirements/runtime.lock, the image's, plus the local and dev extras).
# Idempotent and quick when nothing changed.
# Needs only Python 3.11+ and the PyPI registry.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "kubetrade needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.kubetrade-installed
want="$(cat pyproject.toml testbed/pyproject.toml requirements/runtime.lock requirements/dev.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing dependencies (requirements/dev.lock)"
  if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip >/dev/null
    .venv/bin/python -m pip install -q --upgrade pip uv
  fi
  VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install -q -r requirements/dev.lock
  VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install -q --no-deps -e . -e testbed
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/kubetrade --help >/dev/null && echo 'kubetrade CLI ok')"
