# genrekit: the REST service (default command) and batch jobs in one CPU image.
#
#   docker/wheelhouse                         # once: the wheels the build installs (no index needed)
#   docker build -t genrekit .                # or docker/build, which also sets the labels
#   docker run --rm -p 127.0.0.1:8000:8000 --read-only --tmpfs /tmp genrekit
#   docker run --rm -v ~/Music:/music:ro --read-only --tmpfs /tmp genrekit predict /music -f jsonl
#
# Build arguments: RAY=1 adds genrekit's [ray] extra (Ray Data workers); VERSION, REVISION,
# CREATED and SOURCE fill the OCI labels. See docs/deploy.md.

# --- runtime base: Debian's Python 3.11 and tini, nothing else --------------------------------
FROM debian:bookworm-slim AS base
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# --- deps: a virtual environment with genrekit's dependencies, from the local wheelhouse -------
FROM base AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
# pip lives in its own environment: the runtime environment gets none
RUN python3.11 -m venv /opt/pip && python3.11 -m venv --without-pip /opt/genrekit/venv
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_PYTHON=/opt/genrekit/venv/bin/python
COPY docker/wheels/ /wheels/
# Installs pyproject's dependencies as docker/wheelhouse listed them, without compiling them to
# bytecode (the build stage keeps only the .pyc files genrekit's commands use), then drops what
# CPU inference never uses: PyTorch's C++ headers, CMake files and test binaries (about 190 MB).
RUN test -f /wheels/requirements.txt \
      || { echo "docker/wheels/ is empty: run docker/wheelhouse first" >&2; exit 1; } \
 && /opt/pip/bin/pip install --no-compile -r /wheels/requirements.txt \
 && cd /opt/genrekit/venv/lib/python3.11/site-packages/torch \
 && rm -rf include test bin/test_* bin/*Test bin/protoc* share/cmake
# RAY=1: genrekit's [ray] extra (Ray Data), from docker/wheels-ray/ (docker/wheelhouse --ray)
COPY docker/wheels-ray/ /wheels-ray/
ARG RAY=0
RUN if [ "$RAY" = 1 ]; then \
      test -f /wheels-ray/requirements.txt \
        || { echo "docker/wheels-ray/ is empty: run docker/wheelhouse --ray first" >&2; exit 1; }; \
      /opt/pip/bin/pip install --no-compile --find-links /wheels --find-links /wheels-ray \
        -r /wheels-ray/requirements.txt; \
    fi

# --- build: genrekit itself, and the other musicnn models' weights converted once ---------------
FROM deps AS build
COPY pyproject.toml README.md LICENSE CHANGELOG.md MANIFEST.in /src/
COPY src/ /src/src/
# genrekit carries its default model's musicnn weights (MSD_musicnn); the musicnn package (this
# stage only) gives the image the other three models (MTT_musicnn, MSD_vgg, MTT_vgg) for `tags`
RUN /opt/pip/bin/pip install --no-deps /src \
 && /opt/pip/bin/pip check \
 && /opt/pip/bin/pip install --no-deps musicnn==0.1.0
# docker/warm-up converts those three TensorFlow checkpoints into /opt/genrekit/cache/musicnn,
# where GENREKIT_CACHE_DIR points at run time (read-only), and runs predict, tags and serve so
# that Python writes the bytecode they need.
ENV GENREKIT_CACHE_DIR=/opt/genrekit/cache
COPY docker/warm-up /usr/local/bin/genrekit-warm-up
RUN PATH=/opt/genrekit/venv/bin:$PATH genrekit-warm-up \
 && ls /opt/genrekit/cache/musicnn/MTT_musicnn.safetensors \
      /opt/genrekit/venv/lib/python3.11/site-packages/genrekit/assets/musicnn/MSD_musicnn.safetensors
# only what genrekit adds to the dependencies' environment, so that the big layer stays cached
RUN site=/opt/genrekit/venv/lib/python3.11/site-packages \
 && mkdir -p /stage$site /stage/opt/genrekit/venv/bin \
 && cp -a $site/genrekit $site/genrekit-*.dist-info /stage$site/ \
 && cp -a /opt/genrekit/venv/bin/genrekit /stage/opt/genrekit/venv/bin/ \
 && cp -a /opt/genrekit/cache /stage/opt/genrekit/ \
 && find /opt/genrekit/venv -name '*.pyc' -not -path "$site/musicnn/*" -not -path "$site/genrekit/*" \
      -exec cp -a --parents -t /stage {} + \
 && chmod -R a+rX,go-w /stage/opt

# --- the image ---------------------------------------------------------------------------------
FROM base
# The user's home is /tmp: the image keeps no state, and with a read-only root (docker run
# --read-only --tmpfs /tmp, or Kubernetes' readOnlyRootFilesystem with an emptyDir on /tmp) /tmp is
# the one writable place: uploads being classified, matplotlib's and numba's caches, Ray's session.
RUN useradd --uid 10001 --user-group --home-dir /tmp --no-create-home --shell /usr/sbin/nologin genrekit
COPY --from=deps /opt/genrekit/venv /opt/genrekit/venv
COPY --from=build /stage/ /
ENV PATH=/opt/genrekit/venv/bin:$PATH \
    HOME=/tmp \
    GENREKIT_CACHE_DIR=/opt/genrekit/cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# `genrekit serve` answers /healthz once its model is loaded (a few seconds). Serving on another
# port: set GENREKIT_HEALTHCHECK_URL. Batch jobs: docker run --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u\ntry: u.urlopen(os.environ.get('GENREKIT_HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'), timeout=4)\nexcept OSError as e: sys.exit(f'unhealthy: {e}')"]
# tini as PID 1 passes SIGTERM on (uvicorn then shuts down gracefully) and reaps the decoders
ENTRYPOINT ["tini", "--", "genrekit"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
STOPSIGNAL SIGTERM

ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
ARG SOURCE=""
ARG RAY=0
LABEL org.opencontainers.image.title="genrekit" \
      org.opencontainers.image.description="Tell the genre of music: REST service (genrekit serve) and batch jobs (genrekit predict), CPU PyTorch" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      io.genrekit.ray="${RAY}"
