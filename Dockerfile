# syntax=docker/dockerfile:1
# Candor: slim, multi-stage, non-root. Build: docker build -t candor .
# Run:  docker run -p 8080:8080 -v $PWD/candor.yaml:/etc/candor/candor.yaml:ro candor

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the detector's optional speed-up (proxy/detect/_sums.c); the runtime has none.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proxy ./proxy
# Wheels for Candor and every dependency; the runtime stage installs them without a compiler.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CANDOR_POLICIES_DIR=/app/policies \
    CANDOR_SERVER__HOST=0.0.0.0 \
    CANDOR_SERVER__PORT=8080
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels candor-proxy \
    && groupadd --system --gid 10001 candor \
    && useradd --system --uid 10001 --gid candor --home-dir /app --shell /usr/sbin/nologin candor
WORKDIR /app
COPY --chown=root:root policies /app/policies
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
# The README's start command. In the image Candor always listens on 0.0.0.0:8080 (the env above
# wins over the file) and reads policies from /app/policies: mount yours over it to change them.
CMD ["candor", "serve", "--config", "/etc/candor/candor.yaml"]
