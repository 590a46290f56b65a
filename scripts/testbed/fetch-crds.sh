#!/usr/bin/env bash
# Fetch the third-party CRDs the chart's optional objects need (Prometheus Operator:
# ServiceMonitor, PodMonitor, PrometheusRule, AlertmanagerConfig; cert-manager: Issuer,
# Certificate) at pinned versions, through the Go module proxy (the projects' own
# repositories hold them), and cache them under $KUBETRADE_CACHE/crds.  The chart tests
# install them into the test kube-apiserver, so the variants that render those objects are
# validated against the real schemas.  Prints the cache directory.
set -euo pipefail

PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.79.2}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.16.2}"
CACHE="${KUBETRADE_CACHE:-$HOME/.cache/kubetrade}"
OUT="$CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION-cert-manager-$CERT_MANAGER_VERSION"

if [ -f "$OUT/.complete" ]; then
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to fetch the CRDs" >&2; exit 1; }
export GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dir_of() { (cd "$work" && go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); }
echo "[fetch-crds] prometheus-operator $PROMETHEUS_OPERATOR_VERSION, cert-manager $CERT_MANAGER_VERSION" >&2
po="$(dir_of "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
cm="$(dir_of "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")"
mkdir -p "$OUT.tmp/monitoring" "$OUT.tmp/cert-manager"
for kind in servicemonitors podmonitors prometheusrules alertmanagerconfigs; do
  cp "$po/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$OUT.tmp/monitoring/"
done
for kind in issuers clusterissuers certificates; do
  # cert-manager's CRD files carry Helm markers in comments and label values; the tests
  # drop metadata labels/annotations before applying them.
  cp "$cm/deploy/crds/crd-$kind.yaml" "$OUT.tmp/cert-manager/"
done
chmod -R u+w "$OUT.tmp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
touch "$OUT/.complete"
echo "$OUT"
