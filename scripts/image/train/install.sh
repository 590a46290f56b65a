#!/bin/sh
# The training image's one build step, run as root on top of the kubetrade image's root filesystem:
# by scripts/image/build.sh in a chroot (an overlay whose lower layers are the kubetrade layer and
# Debian bookworm slim) and by the Dockerfile's `train` target.  It adds the `train` extra's
# packages (JAX, jaxlib, optax, gymnasium, onnx and what they need, pinned by train.lock) to
# kubetrade's venv and writes nothing else: what it leaves is the image's one extra layer, so a
# node that has the kubetrade image pulls only this layer.
#
# Inputs in $BUILD (default /tmp/kubetrade-build):
#   train.lock          requirements/train.lock (runtime.lock's pins + the train extra's)
#   uv                  a uv binary (not kept in the image)
#   host-ca.crt         (optional) CA bundle for HTTPS to PyPI behind a TLS-intercepting proxy
# $UV_CACHE_DIR, if set, is uv's download cache (build.sh lends the host's); otherwise none.
set -eu
BUILD="${BUILD:-/tmp/kubetrade-build}"
if [ -s "$BUILD/host-ca.crt" ]; then export SSL_CERT_FILE="$BUILD/host-ca.crt"; fi
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"
VENV=/opt/kubetrade/venv
SITE="$VENV/lib/python3.11/site-packages"
export LANG=C.UTF-8 SOURCE_DATE_EPOCH
[ -x "$VENV/bin/kubetrade" ] || { echo "train/install.sh: no kubetrade venv at $VENV (runs on the kubetrade image)" >&2; exit 1; }
started="$(mktemp)"
notes="$(mktemp -d)"  # this script's own lists (never $BUILD: a Docker build's mounts are read-only)
ls -1A "$SITE" "$VENV/bin" >"$notes/before"

# 1. The train extra's packages, added with --no-deps at train.lock's pins: the runtime packages
#    are already there at the same versions (train.lock is constrained to runtime.lock), so uv
#    leaves them (and kubetrade, which no lock lists) as they are; `uv pip sync` would remove
#    kubetrade.  The check below fails the build if anything in the venv differs from the lock.
if [ -z "${UV_CACHE_DIR:-}" ]; then export UV_NO_CACHE=1; fi
export UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
VIRTUAL_ENV="$VENV" "$BUILD/uv" pip install --quiet --no-deps --requirement "$BUILD/train.lock"
VIRTUAL_ENV="$VENV" "$BUILD/uv" pip freeze --quiet | grep -v '^kubetrade[ =@]' | sort >"$notes/installed"
grep -E '^[A-Za-z0-9]' "$BUILD/train.lock" | sed 's/ .*//' | sort >"$notes/wanted"
if ! cmp -s "$notes/installed" "$notes/wanted"; then
  echo "train/install.sh: the venv is not exactly train.lock (+ kubetrade):" >&2
  diff "$notes/wanted" "$notes/installed" >&2 || true
  exit 1
fi
#    and complete: every installed package's requirements are there (a lock missing an entry fails
#    here, not when a training job first imports it)
VIRTUAL_ENV="$VENV" "$BUILD/uv" pip check --quiet || { echo "train/install.sh: train.lock is not complete" >&2; exit 1; }

# 2. What this step added (site-packages entries and scripts): everything below touches only
#    these, so no file of the kubetrade layer is copied up into this one.
ls -1A "$SITE" "$VENV/bin" >"$notes/after"
new="$(diff "$notes/before" "$notes/after" | sed -n 's/^> //p' | grep -v ':$' || true)"
[ -n "$new" ] || { echo "train/install.sh: nothing was installed" >&2; exit 1; }
added=""
for entry in $new; do
  if [ -e "$SITE/$entry" ]; then added="$added $SITE/$entry"; fi
done

# 3. Smaller, as the kubetrade step: the packages' own test suites, C/C++ headers, Cython sources
#    and uv's note of when it cached each wheel (it would date the image).
# shellcheck disable=SC2086 # $added: paths without spaces (package folders)
find $added -depth -type d \( -name tests -o -name testing_data \) -exec rm -rf {} +
# shellcheck disable=SC2086
find $added -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' \
  -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \) -delete
# shellcheck disable=SC2086
find $added -depth -type d -name __pycache__ -exec rm -rf {} +
for note in "$SITE"/*.dist-info/uv_cache.json; do
  [ -e "$note" ] || continue
  sed -i '/\/uv_cache\.json,/d' "$(dirname "$note")/RECORD"
  rm -f "$note"
done

# 4. Dated SOURCE_DATE_EPOCH (the same layer for the same inputs), then byte code of the new
#    packages only (compileall over all of site-packages would rewrite kubetrade's): hash-based,
#    unchecked, as the kubetrade step compiles (the root filesystem is read-only).
find / -xdev -newer "$started" ! -type s ! -path '/proc/*' ! -path '/dev/*' ! -path "$BUILD/*" \
  -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
# shellcheck disable=SC2086
"$VENV/bin/python" -m compileall -qq -j 0 --invalidation-mode unchecked-hash $added \
  || echo "train/install.sh: some modules did not compile to byte code (kept as source)" >&2
# shellcheck disable=SC2086
chmod -R a+rX,go-w $added

# 5. The training libraries load before the step counts as done (writing nothing: no byte code,
#    HOME in /tmp, which never reaches the layer's content).
PYTHONDONTWRITEBYTECODE=1 HOME=/tmp "$VENV/bin/python" -c 'import jax, jaxlib, optax, gymnasium, onnx'

find / -xdev -newer "$started" ! -type s ! -path '/proc/*' ! -path '/dev/*' ! -path "$BUILD/*" \
  -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
rm -rf "$started" "$notes"
