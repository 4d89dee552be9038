# syntax=docker/dockerfile:1.7
# One image, one command per service: `docker run IMAGE scorer | feedback | retrain | replay ...`.
#
#   docker build --target serving  -t ahunt-broker:serving  .   # scorer, feedback: no torch
#   docker build --target training -t ahunt-broker:training .   # retrain: + torch (CPU), onnx
#
# The serving target installs only the base dependencies of pyproject.toml; the training target
# adds the `train` extra with torch pinned and taken from the CPU index (an unpinned torch pulls
# GBs of CUDA wheels; torchvision is never installed). Both run as the unprivileged user `ahunt`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 ahunt \
    && useradd --system --uid 10001 --gid ahunt --home-dir /var/lib/ahunt --create-home \
       --shell /usr/sbin/nologin ahunt

# Dependencies in their own layers, from pyproject.toml alone, so a code change rebuilds nothing
# heavy. The requirement lists are read with tomllib rather than duplicated here.
FROM base AS deps-serving
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
open('/tmp/serving.txt', 'w').write('\n'.join(p['dependencies'])); \
open('/tmp/train.txt', 'w').write('\n'.join(p['optional-dependencies']['train']))" \
    && python -m venv "$VIRTUAL_ENV" \
    && pip install -r /tmp/serving.txt

FROM deps-serving AS deps-training
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# torch first, from the CPU index (its own dependencies come from PyPI); then the train extra with
# the same pin, so pip keeps the CPU build it already has.
RUN pip install --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple \
        "torch==${TORCH_VERSION}" \
    && pip install -r /tmp/train.txt "torch==${TORCH_VERSION}" \
    && ! pip show torchvision >/dev/null 2>&1

# The source. Installed in editable mode so that schemas/ (read from the source tree, beside the
# packages) stays where services.common.schemas looks for it.
FROM base AS source
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY models/ models/
COPY services/ services/
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/ahunt-healthcheck

FROM source AS app
ENV AHUNT_SCORER_MODEL_DIR=/var/lib/ahunt/models
RUN mkdir -p /var/lib/ahunt/models && chown -R ahunt:ahunt /var/lib/ahunt
VOLUME ["/var/lib/ahunt/models"]
# 9101 scorer metrics, 8080 feedback API (+ /metrics), 9103 retrain metrics
EXPOSE 9101 8080 9103
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["ahunt-healthcheck"]
ENTRYPOINT ["ahunt"]

# scorer and feedback: no torch
FROM app AS serving
COPY --from=deps-serving /opt/venv /opt/venv
RUN pip install --no-deps -e /app && python -c "import services.scorer.app" \
    && ! python -c "import torch" 2>/dev/null
USER ahunt
CMD ["scorer"]

# retrain (and bootstrap, bench): torch on CPU. Last stage, so a plain `docker build .` gives it.
# Only this image carries bench/ (`ahunt bench ...`): the serving path never imports it.
FROM app AS training
COPY --from=deps-training /opt/venv /opt/venv
COPY bench/ bench/
RUN pip install --no-deps -e /app && python -c "import torch, models.learner"
USER ahunt
CMD ["retrain"]
