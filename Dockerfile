# One image for every kubetrade role: operator, collector, strategy runner, risk manager,
# executor, evolution job, API.  The role is the command: `kubetrade <role> ...`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY workloads workloads
COPY operator operator
RUN pip install --no-cache-dir uv \
 && uv pip install --system --no-cache -r requirements.lock \
 && uv pip install --system --no-cache --no-deps .

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin kubetrade
COPY --from=build /usr/local /usr/local
# Compile every numba kernel now, into the image: no pod ever compiles on a hot path.
# NUMBA_CPU_NAME=generic makes the cache valid on any x86-64 node, not just the build host.
# numba only uses a *writable* cache directory, so at run time each process copies this
# seed into its $NUMBA_CACHE_DIR (an emptyDir under /tmp) before it imports a kernel
# (kubetrade.engine.warmcache); the root filesystem stays read-only.
ENV NUMBA_CPU_NAME=generic \
    NUMBA_CACHE_DIR=/opt/kubetrade/numba-cache \
    KUBETRADE_NUMBA_CACHE_SEED=/opt/kubetrade/numba-cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN mkdir -p /opt/kubetrade/numba-cache \
 && kubetrade warmup \
 && chmod -R a+rX /opt/kubetrade
# Pods override NUMBA_CACHE_DIR with a writable path (the chart and the operator set
# /tmp/numba-cache); without an override the seed is used in place where writable.
ENV NUMBA_CACHE_DIR=/tmp/numba-cache
USER 10001
ENTRYPOINT ["kubetrade"]
CMD ["api"]
