#!/usr/bin/env bash
# Build the parts of a real Kubernetes node for the test bed, at pinned versions, from the Go
# module proxy, and cache them under $KUBETRADE_CACHE (default ~/.cache/kubetrade):
#
#   kubelet, kube-proxy   k8s.io/kubernetes (the control plane's wrapper module: same go.mod,
#                         same flags, so the Go build cache shares every package with
#                         build-controlplane.sh's build)
#   containerd, ctr,      github.com/containerd/containerd/v2 (CRI runtime; kubelet 1.36 wants
#   containerd-shim-runc-v2  containerd 2.x, Debian bookworm's 1.6 is too old)
#   runc                  github.com/opencontainers/runc (cgo, with seccomp: the chart's pods
#                         ask for the RuntimeDefault profile)
#   bridge, host-local,   github.com/containernetworking/plugins (CNI)
#   loopback, portmap
#   coredns               github.com/coredns/coredns (cluster DNS, run as a pod), with only the
#                         plugins its Corefile uses (testbed/kubetrade_testbed/node/coredns)
#   crictl                sigs.k8s.io/cri-tools
#   pause                 the pod sandbox's process, from testbed/kubetrade_testbed/node/pause (no
#                         registry can give registry.k8s.io/pause here)
#
# and installs the host tools they call from Debian's packages: iptables (kube-proxy, the
# bridge and portmap plugins), conntrack (kube-proxy), libseccomp-dev (runc's build),
# busybox-static (the baseline image).  Prints the directory holding the binaries.
# A cold build takes some minutes on two cores (after build-controlplane.sh: its compiled
# packages are reused); every later call finds the cache and returns at once.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
RUNC_VERSION="${RUNC_VERSION:-v1.5.3}"
CNI_VERSION="${CNI_VERSION:-v1.9.1}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
CACHE="${KUBETRADE_CACHE:-$HOME/.cache/kubetrade}"
OUT="$CACHE/bin/node-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-cni-$CNI_VERSION-coredns-$COREDNS_VERSION-crictl-$CRICTL_VERSION-dnsmin"
BINARIES=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr runc bridge host-local loopback portmap coredns crictl pause)
HOST_TOOLS=(iptables conntrack busybox)
DEBIAN_PACKAGES=(iptables conntrack libseccomp-dev busybox-static)

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
log() { echo "[build-node] $*" >&2; }

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done
  for t in "${HOST_TOOLS[@]}"; do command -v "$t" >/dev/null || return 1; done
  [ -f /usr/include/seccomp.h ] || return 1
}

if have_all; then
  echo "$OUT"
  exit 0
fi

# --- host tools (Debian) -------------------------------------------------------
missing=()
command -v iptables >/dev/null || missing+=(iptables)
command -v conntrack >/dev/null || missing+=(conntrack)
command -v busybox >/dev/null || missing+=(busybox-static)
[ -f /usr/include/seccomp.h ] || missing+=(libseccomp-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

command -v go >/dev/null || { echo "go is required to build the node" >&2; exit 1; }
mkdir -p "$OUT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- kubelet, kube-proxy ----------------------------------------------------------
if [ ! -x "$OUT/kubelet" ] || [ ! -x "$OUT/kube-proxy" ]; then
  log "building kubelet, kube-proxy $K8S_VERSION"
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  staging_minor="0.${K8S_VERSION#v1.}"
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
  printf '//go:build tools\n\npackage tools\n' > "$work/k8s/tools.go"
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$work/k8s" && go build -trimpath -ldflags "$ldflags" -o "$OUT/" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
fi

# A module of its own for a tool: require it at its version and build the named packages.
build_module() {  # name module version ldflags pkg...
  local name="$1" module="$2" version="$3" ldflags="$4"; shift 4
  mkdir -p "$work/$name"
  printf 'module kubetrade.io/testbed/%s\n\ngo 1.25\n\nrequire %s %s\n' "$name" "$module" "$version" > "$work/$name/go.mod"
  printf '//go:build tools\n\npackage tools\n' > "$work/$name/tools.go"
  (cd "$work/$name" && go build -trimpath -ldflags "-s -w $ldflags" -o "$OUT/" "$@")
}

# --- containerd -------------------------------------------------------------------
if [ ! -x "$OUT/containerd" ] || [ ! -x "$OUT/containerd-shim-runc-v2" ] || [ ! -x "$OUT/ctr" ]; then
  log "building containerd $CONTAINERD_VERSION"
  v=github.com/containerd/containerd/v2/version
  GOFLAGS="$GOFLAGS -tags=no_btrfs,no_devmapper,no_zfs" build_module containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" \
    "-X $v.Version=$CONTAINERD_VERSION -X $v.Revision=$CONTAINERD_VERSION -X $v.Package=github.com/containerd/containerd/v2" \
    github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr
fi

# --- runc (cgo: nsenter is C; seccomp through libseccomp) ---------------------------
if [ ! -x "$OUT/runc" ]; then
  log "building runc $RUNC_VERSION"
  CGO_ENABLED=1 GOFLAGS="$GOFLAGS -tags=seccomp" build_module runc github.com/opencontainers/runc "$RUNC_VERSION" \
    "-X main.version=${RUNC_VERSION#v}" github.com/opencontainers/runc
fi

# --- CNI plugins ------------------------------------------------------------------
if [ ! -x "$OUT/bridge" ] || [ ! -x "$OUT/host-local" ] || [ ! -x "$OUT/loopback" ] || [ ! -x "$OUT/portmap" ]; then
  log "building CNI plugins $CNI_VERSION"
  build_module cni github.com/containernetworking/plugins "$CNI_VERSION" \
    "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_VERSION" \
    github.com/containernetworking/plugins/plugins/main/bridge \
    github.com/containernetworking/plugins/plugins/main/loopback \
    github.com/containernetworking/plugins/plugins/ipam/host-local \
    github.com/containernetworking/plugins/plugins/meta/portmap
fi

# --- CoreDNS ----------------------------------------------------------------------
if [ ! -x "$OUT/coredns" ]; then
  log "building CoreDNS $COREDNS_VERSION"
  mkdir -p "$work/coredns"
  cp "$(dirname "$0")/../../testbed/kubetrade_testbed/node/coredns/main.go" "$work/coredns/"
  printf 'module kubetrade.io/testbed/coredns\n\ngo 1.25\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" \
    > "$work/coredns/go.mod"
  (cd "$work/coredns" && go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    -o "$OUT/coredns" .)
fi

# --- crictl -----------------------------------------------------------------------
if [ ! -x "$OUT/crictl" ]; then
  log "building crictl $CRICTL_VERSION"
  build_module crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
fi

# --- pause (ours) -------------------------------------------------------------------
if [ ! -x "$OUT/pause" ]; then
  log "building pause"
  mkdir -p "$work/pause"
  cp "$(dirname "$0")/../../testbed/kubetrade_testbed/node/pause/main.go" "$work/pause/"
  printf 'module kubetrade.io/testbed/pause\n\ngo 1.25\n' > "$work/pause/go.mod"
  (cd "$work/pause" && go build -trimpath -ldflags "-s -w" -o "$OUT/pause" .)
fi

have_all || { echo "node build incomplete in $OUT" >&2; ls "$OUT" >&2; exit 1; }
{
  echo "kubernetes $K8S_VERSION (kubelet, kube-proxy)"
  echo "containerd $CONTAINERD_VERSION"
  echo "runc $RUNC_VERSION"
  echo "cni-plugins $CNI_VERSION (bridge, host-local, loopback, portmap)"
  echo "coredns $COREDNS_VERSION"
  echo "crictl $CRICTL_VERSION"
  echo "pause (testbed/kubetrade_testbed/node/pause, go $(go env GOVERSION))"
  echo "iptables $(dpkg-query -W -f '${Version}' iptables 2>/dev/null || iptables --version)"
  echo "conntrack $(dpkg-query -W -f '${Version}' conntrack 2>/dev/null || echo '?')"
  echo "busybox $(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo '?')"
} > "$OUT/VERSIONS"
echo "$OUT"
