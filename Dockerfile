# sigmabatch: one image for every phase. Each Argo step runs `python -m phases.<name> ...`.
# Build: docker build -t ghcr.io/sigmabatch/sigmabatch:0.1.0 .
# The base is pinned by version (bump both stages together); pin its digest too where the build can resolve
# it: FROM python:3.11.11-slim-bookworm@sha256:<digest> (`docker buildx imagetools inspect <image>`).

# ---- build: install the project (runtime dependencies only, no extras) into a virtualenv ----------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the lock file (`make lock`): a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-virtualenv -r requirements.lock
# Then the project itself, without touching the pinned dependencies.
COPY pyproject.toml README.md* ./
COPY shared ./shared
COPY phases ./phases
COPY workflows ./workflows
RUN pip install --no-cache-dir --no-deps .

# ---- runtime: non-root, read-only friendly; the only writable place is /scratch (an emptyDir) -----
FROM python:3.11.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="sigmabatch" \
      org.opencontainers.image.description="Nightly portfolio-analytics batch (phases run as python -m phases.<name>)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/scratch \
    TMPDIR=/scratch/tmp \
    XDG_CACHE_HOME=/scratch/cache \
    SIGMABATCH_ARTIFACTS=/scratch/artifacts \
    SIGMABATCH_LOG_FORMAT=json
RUN groupadd --system --gid 10001 sigmabatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /scratch --no-create-home \
       --shell /usr/sbin/nologin sigmabatch \
    && mkdir -p /scratch/tmp /scratch/cache /scratch/artifacts \
    && chown -R 10001:10001 /scratch
COPY --from=build /opt/venv /opt/venv
WORKDIR /scratch
USER 10001:10001
# No ENTRYPOINT: Argo sets `command: [python, -m, phases.<name>]`. Without one, show the CLI's help.
CMD ["sigmabatch", "--help"]
