#!/bin/sh
# The kubetrade image's one build step, run as root inside the image's root filesystem on top of
# Debian bookworm slim: by scripts/image/build.sh in a chroot, and by the Dockerfile's RUN.  Both
# therefore make the same image; only the image config (ENV, USER, ENTRYPOINT) is written twice,
# in scripts/image/kubetrade/config.json and the Dockerfile, and tests/image compares the two.
#
# Inputs in $BUILD (default /tmp/kubetrade-build):
#   runtime.lock        requirements/runtime.lock (pyproject's dependencies, pinned)
#   dist/kubetrade-*.whl  the kubetrade wheel (never the test bed)
#   uv                  a uv binary (not kept in the image)
#   host-ca.crt         (optional) CA bundle for HTTPS to PyPI behind a TLS-intercepting proxy
#                       (build.sh copies the host's; Docker: --secret id=ca,src=FILE)
# $UV_CACHE_DIR, if set, is uv's download cache (build.sh lends the host's); otherwise none.
set -eu
BUILD="${BUILD:-/tmp/kubetrade-build}"
if [ -s "$BUILD/host-ca.crt" ]; then export SSL_CERT_FILE="$BUILD/host-ca.crt"; fi
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"
VENV=/opt/kubetrade/venv
SEED=/opt/kubetrade/numba-cache
SITE="$VENV/lib/python3.11/site-packages"
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 SOURCE_DATE_EPOCH
started="$(mktemp)"

# 1. Debian: the interpreter (3.11 in bookworm) and CA certificates (TLS to an external database
#    or exchange through the system store); nothing else, no compiler.
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 ca-certificates >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
  /var/log/apt /var/log/dpkg.log /var/log/alternatives.log /var/cache/ldconfig/aux-cache

# 2. The user every role runs as (the chart's runAsUser); no home, no shell.
groupadd --system --gid 10001 kubetrade
useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
  --shell /usr/sbin/nologin kubetrade
rm -f /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- /var/log/faillog /var/log/lastlog

# 3. Python packages: exactly runtime.lock (uv pip sync removes anything else), then kubetrade.
if [ -z "${UV_CACHE_DIR:-}" ]; then export UV_NO_CACHE=1; fi
export UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
"$BUILD/uv" venv --quiet --python /usr/bin/python3 "$VENV"
VIRTUAL_ENV="$VENV" "$BUILD/uv" pip sync --quiet "$BUILD/runtime.lock"
VIRTUAL_ENV="$VENV" "$BUILD/uv" pip install --quiet --no-deps "$BUILD"/dist/kubetrade-*.whl

# 4. Smaller: the packages' own test suites, C/C++ headers and Cython sources are never used
#    at run time (the image test imports every role and runs a backtest on what is left).
find "$SITE" -depth -type d \( -name tests -o -name testing_data \) \
  -exec rm -rf {} +
rm -rf "$SITE/numpy/_core/include" "$SITE/numpy/_core/lib/pkgconfig" "$SITE/pyarrow/include" \
  "$SITE/pyarrow/src"
find "$SITE" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' \
  -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \) -delete
find "$SITE" -depth -type d -name __pycache__ -exec rm -rf {} +
#    uv's own note of when it cached each wheel (not read at run time; it would date the image)
for note in "$SITE"/*.dist-info/uv_cache.json; do
  [ -e "$note" ] || continue
  sed -i '/\/uv_cache\.json,/d' "$(dirname "$note")/RECORD"
  rm -f "$note"
done
#    pyarrow is here for Parquet export (kubetrade.storage.export); its Arrow Flight RPC and S3
#    file system (50 MB, loaded by nothing else: pyarrow.fs imports _s3fs only if present) go.
rm -f "$SITE"/pyarrow/libarrow_flight.so* "$SITE"/pyarrow/libarrow_python_flight.so* \
  "$SITE"/pyarrow/_flight.*.so "$SITE"/pyarrow/flight.py "$SITE"/pyarrow/libarrow_s3.so* "$SITE"/pyarrow/_s3fs.*.so

# 5. Every file this build wrote is dated SOURCE_DATE_EPOCH before anything records a date:
#    numba's cache index keeps each source file's modification time and only loads a kernel
#    whose source still has it, and the layer is then the same for the same inputs.
find / -xdev -newer "$started" ! -type s ! -path '/proc/*' ! -path '/dev/*' ! -path "$BUILD/*" \
  -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

# 6. Byte code, checked by nothing but its presence (the root filesystem is read-only, no source
#    ever changes under it), so no process compiles an import.
#    A few files no import ever reaches do not compile (ccxt ships some with empty `from  import`);
#    they stay source, and the image test checks every kubetrade module has its byte code.
"$VENV/bin/python" -m compileall -qq -j 0 --invalidation-mode unchecked-hash "$SITE" \
  || echo "install.sh: some modules did not compile to byte code (kept as source)" >&2

# 7. Every numba kernel, compiled for any x86-64 CPU (NUMBA_CPU_NAME=generic) into the seed cache
#    that each process copies into its writable $NUMBA_CACHE_DIR (kubetrade.engine.warmcache).
#    numba's cache files hold text with the addresses of Python objects: without address space
#    randomization (where the build may turn it off; Docker's seccomp profile does not let it) and
#    with a fixed hash seed they come out the same in every build.
mkdir -p "$SEED"
fixed=""
if setarch "$(uname -m)" --addr-no-randomize true 2>/dev/null; then fixed="setarch $(uname -m) --addr-no-randomize"; fi
NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR="$SEED" KUBETRADE_NUMBA_CACHE_SEED="" PYTHONDONTWRITEBYTECODE=1 \
  PYTHONHASHSEED=0 HOME=/tmp $fixed "$VENV/bin/kubetrade" warmup
chmod -R a+rX,go-w /opt/kubetrade

find / -xdev -newer "$started" ! -type s ! -path '/proc/*' ! -path '/dev/*' ! -path "$BUILD/*" \
  -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
rm -f "$started"
