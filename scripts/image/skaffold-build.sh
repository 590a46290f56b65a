#!/usr/bin/env bash
# Skaffold's custom builder (profile `no-docker` in skaffold.yaml): the image from
# scripts/image/build.sh (no Docker engine), then made available as skaffold's $IMAGE:
#   PUSH_IMAGE=true   copied to the registry of $IMAGE with skopeo (`skaffold dev -p no-docker
#                     --default-repo=registry.example:5000`; log in with `skopeo login` first)
#   PUSH_IMAGE=false  imported into the node's containerd (namespace k8s.io) and tagged $IMAGE:
#                     a one-node cluster on this machine (k3s, kubeadm, the test node); set
#                     CONTAINERD_ADDRESS if its socket is not /run/containerd/containerd.sock
# Needs root (like build.sh); skopeo or ctr is installed from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${IMAGE:?skaffold sets IMAGE}"
json="$(bash scripts/image/build.sh kubetrade)"
archive="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["kubetrade"]["archive"])' <<<"$json")"
ref="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["kubetrade"]["reference"])' <<<"$json")"
need() {  # need COMMAND PACKAGE
  command -v "$1" >/dev/null && return
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$2" >&2
}
if [ "${PUSH_IMAGE:-false}" = true ]; then
  need skopeo skopeo
  skopeo copy "oci-archive:$archive" "docker://$IMAGE"
else
  ctr=(ctr --address "${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}" -n k8s.io)
  command -v ctr >/dev/null || { echo "ctr not found: install containerd's ctr, or push (PUSH_IMAGE=true)" >&2; exit 1; }
  "${ctr[@]}" images import "$archive" >&2
  "${ctr[@]}" images tag --force "$ref" "$IMAGE" >&2
fi
echo "[skaffold-build] $IMAGE <- $ref ($archive)" >&2
