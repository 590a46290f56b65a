#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries the test bed runs (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, kwok) from the Go module proxy at
# pinned versions (plus a matching kubectl), and cache them under $KUBETRADE_CACHE (default ~/.cache/kubetrade).
#
# Why build: the machines this project runs on reach package registries only, and
# k8s.io/kubernetes cannot be `go install`ed (its staging modules are replaced by
# local paths at v0.0.0). A wrapper module that pins every staging module at its
# published v0.Y.Z builds it.  A cold build takes tens of minutes on two cores;
# every later call finds the cached binaries and returns at once.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${KUBETRADE_CACHE:-$HOME/.cache/kubetrade}"
OUT="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

have_all() {
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok; do
    [ -x "$OUT/$b" ] || return 1
  done
}

if have_all; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
mkdir -p "$OUT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log() { echo "[build-controlplane] $*" >&2; }

# --- Kubernetes ---------------------------------------------------------------
if [ ! -x "$OUT/kube-apiserver" ] || [ ! -x "$OUT/kube-controller-manager" ] || [ ! -x "$OUT/kube-scheduler" ] \
   || [ ! -x "$OUT/kubectl" ]; then
  log "building Kubernetes $K8S_VERSION (cold build: tens of minutes)"
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  staging_minor="0.${K8S_VERSION#v1.}"   # v1.36.3 -> 0.36.3
  mkdir -p "$work/k8s"
  {
    echo "module kubetrade.io/testbed/k8s"
    echo
    echo "go $(awk '/^go /{print $2; exit}' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v'"$staging_minor"'#p' "$gomod"
    echo ")"
  } > "$work/k8s/go.mod"
  cat > "$work/k8s/tools.go" <<'GO'
//go:build tools

package tools
GO
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$work/k8s" && go build -trimpath -ldflags "$ldflags" -o "$OUT/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl)
fi

# --- etcd ---------------------------------------------------------------------
if [ ! -x "$OUT/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  cat > "$work/etcd/go.mod" <<GOMOD
module kubetrade.io/testbed/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  (cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)
fi

# --- kwok (simulated nodes, so Deployments get Running, Ready pods) -------------
if [ ! -x "$OUT/kwok" ]; then
  log "building kwok $KWOK_VERSION"
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi

have_all || { echo "control-plane build incomplete in $OUT" >&2; exit 1; }
echo "$OUT"
