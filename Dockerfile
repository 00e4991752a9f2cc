# The nbo decision service. Two stages: `build` installs the project into a virtualenv, `runtime` copies
# only that virtualenv onto a fresh slim image (no pip cache, no build files, no sources beside the package).
#
#   docker build -t nbo:local .
#   docker run --rm -p 8000:8000 -v nbo-data:/data nbo:local             # embedded mode, state in /data
#   docker compose up -d                                                 # production shape: see docs/deployment.md
#
# Both stages use the same base image, so the venv's interpreter path (/usr/local/bin/python3.11) exists in
# the runtime stage. Pin it by digest (python:3.11-slim@sha256:...) for reproducible production builds.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml, in their own layer: a code change then rebuilds in seconds
# instead of reinstalling LightGBM, pyarrow and llvmlite. Every dependency ships manylinux wheels (x86_64 and
# aarch64), so this stage needs no compiler.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself, as a regular (not editable) install: the demo catalogue (policies/demo) and the
# Alembic migrations are package data, so the runtime stage needs nothing from /src.
COPY . .
RUN pip install . && nbo --help > /dev/null


FROM python:3.11-slim AS runtime

# libgomp1: LightGBM's OpenMP runtime, the one shared library the wheels expect from the system.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so that volumes and a Kubernetes `runAsUser`/`fsGroup` can be set to match it.
RUN groupadd --gid 10001 nbo \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin nbo \
    && mkdir -p /data/models \
    && chown -R 10001:10001 /data

COPY --from=build /opt/venv /opt/venv

# OMP_*: a server process scores on its calling thread; idle OpenMP threads would otherwise busy-wait.
# NBO_*: the embedded defaults moved under /data, the one writable place. The model registry (NBO_MODEL_DIR)
# is a volume mounted there; no VOLUME instruction, because it would give every one-off container
# (`nbo db upgrade`) an anonymous volume of its own. A named volume mounted on /data starts as a copy of this
# directory, owned by uid 10001. docker-compose.yml and production override NBO_DATABASE_URL.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    OMP_WAIT_POLICY=passive \
    NBO_MODEL_DIR=/data/models \
    NBO_FEATURES_FILE=/data/demo/customers.parquet \
    NBO_DATABASE_URL=sqlite+aiosqlite:////data/nbo.db

WORKDIR /data
USER 10001:10001
EXPOSE 8000

# Liveness only: /healthz answers while the process serves. Readiness (/readyz: Redis, PostgreSQL, model) is
# for the load balancer; a container restarted because Redis is down would not bring Redis back.
# The slim image has no curl: python's urllib raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NBO_PORT', '8000') + '/healthz', timeout=3)"]

CMD ["nbo", "serve", "--host", "0.0.0.0"]
