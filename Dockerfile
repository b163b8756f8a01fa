# headstart's serving image: the service, its base dependencies and a model
# repository. The runtime stage has no torch and no compiler, and runs as uid 10001.
#
#   docker build -t headstart .
#   docker run --rm -p 8000:8000 --stop-timeout 35 headstart
#
# (podman: `podman build --format docker ...`, so that the HEALTHCHECK is kept; the
# README's "Deploy" section has both, and what each option is for.)
#
# By default the image takes the default models committed in model_repository/mnist
# (MODEL_SOURCE=committed): the build installs no torch and trains nothing. To train
# them in the build instead (`headstart build`, on the CPU, minutes):
#
#   docker build -t headstart --build-arg MODEL_SOURCE=build .
#
# To ship a repository you already have, pass it as a named build context:
#
#   docker build -t headstart --build-arg MODEL_SOURCE=context \
#       --build-context model-repository=./model_repository .
#
# Every package is installed at the version deploy/constraints.txt pins
# (`python deploy/lock.py` writes it from pyproject.toml). Two optional inputs for
# pip, for builds without the public indexes' usual reach:
#   --build-context wheels=DIR   a folder of wheels pip may take them from, e.g. a CPU
#                                torch wheel (with --build-arg TORCH_INDEX_URL= to skip
#                                torch's own index)
#   --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt
#                                the CA bundle pip trusts, behind a TLS-intercepting proxy
#
# Every setting is a HEADSTART_* environment variable (README, "Configuration"),
# e.g. `docker run -e HEADSTART_WORKERS=4 ...`.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# Where the model repository comes from: "committed" copies the default models committed
# in model_repository/ (all of it that .dockerignore lets in: mnist), "build" trains them
# in the image build, "context" copies the directory given as the `model-repository`
# build context.
ARG MODEL_SOURCE=committed

# Replaced by `--build-context wheels=DIR`; empty otherwise.
FROM scratch AS wheels

# The project's source, as one layer that the install stages copy in last.
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY service/ /src/service/
COPY models/ /src/models/
COPY scripts/ /src/scripts/

# The installing stages' base. pip-install.sh installs at the locked versions; a RUN
# that installs mounts the optional wheels and `ca-bundle` secret for it.
FROM ${PYTHON_IMAGE} AS python
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml deploy/requirements.py deploy/constraints.txt deploy/pip-install.sh ./

# The offline side: torch's CPU build and what training and export need.
FROM python AS train
# torch==2.13.0 from PyPI is a CUDA build of several GB; this index has the CPU one
# (2.13.0+cpu, the version the lock pins). Empty: no extra index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Dependencies first, in a layer of their own: a change to the code does not download them again.
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=secret,id=ca-bundle \
    python -m venv /opt/train \
    && python requirements.py train > requirements.txt \
    && ./pip-install.sh /opt/train \
        ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} -r requirements.txt
COPY --from=source /src /src
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=secret,id=ca-bundle \
    ./pip-install.sh /opt/train --no-deps . \
    && /opt/train/bin/pip check

FROM train AS models-build
# Extra options for `headstart build`, e.g. --build-arg BUILD_OPTIONS="--quick --arch mlp";
# left unquoted below so that they split into words.
ARG BUILD_OPTIONS=""
RUN /opt/train/bin/headstart build --model-repository /models ${BUILD_OPTIONS}

# Replaced by `--build-context model-repository=DIR`; empty otherwise.
FROM scratch AS model-repository

FROM ${PYTHON_IMAGE} AS models-context
COPY --from=model-repository / /models/
RUN test -n "$(ls -A /models)" \
    || { echo "MODEL_SOURCE=context needs --build-context model-repository=DIR" >&2; exit 1; }

FROM ${PYTHON_IMAGE} AS models-committed
COPY model_repository/ /models/
RUN test -f /models/mnist/pretrained/manifest.json && test -f /models/mnist/baseline/manifest.json \
    || { echo "MODEL_SOURCE=committed needs the default models in model_repository/mnist" \
        "(make models builds them), or use MODEL_SOURCE=build" >&2; exit 1; }

# A stage of this file chosen by MODEL_SOURCE, not an image, so it has no tag. The default
# is repeated here because buildah before 1.29 (Debian 12's podman 4.3) leaves the global
# ARG's default out when it works out which stages a build needs, and then finds no stage.
# hadolint ignore=DL3006
FROM models-${MODEL_SOURCE:-committed} AS models

# The serving environment: the project and its base dependencies only.
FROM python AS serve-env
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=secret,id=ca-bundle \
    python -m venv /opt/venv \
    && python requirements.py postgres > requirements.txt \
    && ./pip-install.sh /opt/venv -r requirements.txt
COPY --from=source /src /src
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=secret,id=ca-bundle \
    ./pip-install.sh /opt/venv --no-deps . \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
# ORT_DISABLE_TELEMETRY: ONNX Runtime would otherwise try to keep telemetry under $HOME,
# which this user does not have, and warn at every start.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    HEADSTART_MODEL_REPOSITORY=/srv/headstart/model_repository \
    HEADSTART_STATE_DIRECTORY=/var/lib/headstart \
    HEADSTART_HOST=0.0.0.0 \
    HEADSTART_PORT=8000
# A regular (not --system) account: 10001 lies outside the system range, which makes
# --system warn; --no-log-init keeps lastlog from growing a sparse file for the uid.
RUN groupadd --gid 10001 headstart \
    && useradd --uid 10001 --gid headstart --no-create-home --no-log-init \
        --home-dir /nonexistent --shell /usr/sbin/nologin headstart \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/headstart
COPY --from=serve-env /opt/venv /opt/venv
COPY --from=models /models /srv/headstart/model_repository
COPY deploy/healthcheck.py /usr/local/bin/headstart-healthcheck
WORKDIR /srv/headstart
USER 10001:10001
# Fail the build, not the first start. The check runs as the user the service runs as, so
# a model it cannot read fails here: every model must verify, and torch must be absent.
RUN headstart models list \
    && test -n "$(ls -A "$HEADSTART_MODEL_REPOSITORY")" \
    && ! python -c "import torch" 2>/dev/null
# The SQLite experiments database, when HEADSTART_DATABASE_URL does not name a shared one.
VOLUME ["/var/lib/headstart"]
# HTTP (v1, V2 REST, /metrics) and the Open Inference Protocol over gRPC.
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/headstart-healthcheck"]
# gunicorn is PID 1: SIGTERM reaches it directly and it drains in-flight requests
# for HEADSTART_GRACEFUL_TIMEOUT seconds (30 by default) before it exits, so give the
# engine a stop timeout above that (docker run --stop-timeout 35).
CMD ["gunicorn", "--config", "python:service.gunicorn_conf", "service:create_app()"]
