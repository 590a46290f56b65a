# syntax=docker/dockerfile:1
# One image for every kubetrade role: operator, collector, strategy runner, risk manager,
# executor, evolution job, API.  The role is the command: `kubetrade <role> ...`.
#
# The same image as scripts/image/build.sh makes without Docker: Debian bookworm slim and one
# build step, scripts/image/kubetrade/install.sh (Debian's python3 3.11, requirements/runtime.lock,
# the kubetrade wheel, every numba kernel compiled in, user 10001).  The config below (ENV, USER,
# ENTRYPOINT, CMD) is scripts/image/kubetrade/config.json's; tests/image/test_dockerfile.py keeps
# the two equal.  Needs BuildKit (RUN --mount): docker build ., or skaffold build.
#
# Targets: kubetrade (the default: docker build .) and train (docker build --target train .), the
# training image of Goals that ask for RL policies: the kubetrade image plus one layer,
# scripts/image/train/install.sh (requirements/train.lock's JAX, optax, gymnasium, onnx in the same
# venv), with scripts/image/train/config.json's config; build.sh's `train` image.

# Behind a TLS-intercepting proxy, give its CA bundle for HTTPS to PyPI (never kept in the image):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .

# The wheel and a uv binary; nothing of this stage is in the image.
FROM debian:bookworm-slim AS wheel
RUN --mount=type=secret,id=ca,target=/tmp/kubetrade-build/host-ca.crt \
    if [ -s /tmp/kubetrade-build/host-ca.crt ]; then export PIP_CERT=/tmp/kubetrade-build/host-ca.crt; fi \
 && apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
 && python3 -m venv /tools && /tools/bin/pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workloads workloads
COPY operator operator
RUN --mount=type=secret,id=ca,target=/tmp/kubetrade-build/host-ca.crt \
    if [ -s /tmp/kubetrade-build/host-ca.crt ]; then export SSL_CERT_FILE=/tmp/kubetrade-build/host-ca.crt; fi \
 && /tools/bin/uv build --wheel --out-dir /dist .

FROM debian:bookworm-slim AS kubetrade
ARG SOURCE_DATE_EPOCH=1767225600
RUN --mount=type=bind,source=scripts/image/kubetrade/install.sh,target=/tmp/kubetrade-build/install.sh \
    --mount=type=bind,source=requirements/runtime.lock,target=/tmp/kubetrade-build/runtime.lock \
    --mount=type=bind,from=wheel,source=/dist,target=/tmp/kubetrade-build/dist \
    --mount=type=bind,from=wheel,source=/tools/bin/uv,target=/tmp/kubetrade-build/uv \
    --mount=type=cache,target=/tmp/kubetrade-build/uv-cache \
    --mount=type=secret,id=ca,target=/tmp/kubetrade-build/host-ca.crt \
    BUILD=/tmp/kubetrade-build UV_CACHE_DIR=/tmp/kubetrade-build/uv-cache SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH \
    sh /tmp/kubetrade-build/install.sh
# numba only uses a *writable* cache directory, so each process copies the image's seed
# (/opt/kubetrade/numba-cache, compiled with NUMBA_CPU_NAME=generic: valid on any x86-64 node)
# into its $NUMBA_CACHE_DIR (an emptyDir under /tmp) before it imports a kernel
# (kubetrade.engine.warmcache); the root filesystem stays read-only.
ENV PATH=/opt/kubetrade/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    HOME=/tmp \
    NUMBA_CPU_NAME=generic \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    KUBETRADE_NUMBA_CACHE_SEED=/opt/kubetrade/numba-cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="kubetrade" \
      org.opencontainers.image.description="Kubernetes-native autonomous crypto trading platform; every role is kubetrade ROLE" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
USER 10001:10001
ENTRYPOINT ["kubetrade"]
CMD ["api"]

# The training image: the kubetrade image's layers and one more (root only for its RUN).
FROM kubetrade AS train
ARG SOURCE_DATE_EPOCH=1767225600
USER 0:0
RUN --mount=type=bind,source=scripts/image/train/install.sh,target=/tmp/kubetrade-build/install.sh \
    --mount=type=bind,source=requirements/train.lock,target=/tmp/kubetrade-build/train.lock \
    --mount=type=bind,from=wheel,source=/tools/bin/uv,target=/tmp/kubetrade-build/uv \
    --mount=type=cache,target=/tmp/kubetrade-build/uv-cache \
    --mount=type=secret,id=ca,target=/tmp/kubetrade-build/host-ca.crt \
    BUILD=/tmp/kubetrade-build UV_CACHE_DIR=/tmp/kubetrade-build/uv-cache SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH \
    sh /tmp/kubetrade-build/install.sh
LABEL org.opencontainers.image.title="kubetrade-train" \
      org.opencontainers.image.description="kubetrade with its training libraries (JAX, optax, gymnasium, onnx), for the evolution jobs of Goals that ask for RL policies; every role is kubetrade ROLE"
USER 10001:10001

# The default target (docker build . without --target): the kubetrade image, as it is.
FROM kubetrade
