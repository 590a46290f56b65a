#!/usr/bin/env bash
# Build the Helm CLI the chart tests run (`helm lint`, `helm template`) from the Go module
# proxy at a pinned version, and cache it under $KUBETRADE_CACHE (default ~/.cache/kubetrade)
# beside the control plane.  Prints the directory holding `helm`.
#
# Why build: the machines this project runs on reach package registries only; Helm has no
# replace directives, so `go install helm.sh/helm/v3/cmd/helm@vX` works as is.  The version
# is stamped through ldflags so `helm version` and `.Capabilities.HelmVersion` are honest,
# and the Kubernetes version `helm template` assumes offline is set to the test bed's, so
# templates see the same `.Capabilities.KubeVersion` as against the real kube-apiserver.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
CACHE="${KUBETRADE_CACHE:-$HOME/.cache/kubetrade}"
OUT="$CACHE/bin/helm-$HELM_VERSION-k8s-$K8S_VERSION"

if [ -x "$OUT/helm" ]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build helm" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
echo "[build-helm] building helm $HELM_VERSION (one-time: a few minutes)" >&2
mkdir -p "$OUT.tmp"
major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
ldflags="$ldflags -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major"
ldflags="$ldflags -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
GOBIN="$OUT.tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
"$OUT/helm" version --short >&2
echo "$OUT"
