#!/usr/bin/env bash
# Set everything up and run every test against real components:
#   - the Python environment (scripts/setup.sh)
#   - the Kubernetes control plane binaries, built from the Go module proxy and cached
#     under ~/.cache/kubetrade (first run about 5-10 minutes, later runs instant)
#   - NATS, PostgreSQL and the control plane are started by the test fixtures themselves.
# Extra arguments go to pytest, e.g. scripts/test.sh -k risk -x
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "[test] control plane: $(bash scripts/testbed/build-controlplane.sh)"
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
