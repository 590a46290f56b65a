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
# numba caches compiled kernels here; the image build warms the cache once `kubetrade warmup` exists.
ENV NUMBA_CACHE_DIR=/opt/kubetrade/numba-cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN mkdir -p /opt/kubetrade/numba-cache && chmod -R a+rX /opt/kubetrade
USER 10001
ENTRYPOINT ["kubetrade"]
CMD ["api"]
