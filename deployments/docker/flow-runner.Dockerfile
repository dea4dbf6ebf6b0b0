# The flow-runner image of the `kind` Kubernetes work pool: the project and its locked runtime
# dependencies (no dev group) in /opt/bridgeai/.venv, the flows at /opt/bridgeai/flows (prefect.yaml's
# kind deployments `set_working_directory` to /opt/bridgeai), running as a non-root user.
#
# It builds with no network. The context is prepared on the host by bridgeai.ops.flow_runner
# (prefect.yaml's build step, or `python -m bridgeai.ops.flow_runner`):
#   wheels/   every runtime distribution installed in the project's environment, repacked as wheels
#             (the uv.lock versions, since `make sync` installs exactly those)
#   project/  a wheel of bridgeai, flows and blocks (with the `bridgeai` command)
#   app/      flows/, blocks/, prefect.yaml and deployments/model-image (build-model-image's template)
#   tools/uv  the uv binary that `make sync` uses, to install the wheels (build stage only)
# BASE_IMAGE needs python3 (3.11, the minor version the wheels were repacked for), python3-venv,
# git and libgomp1: deployments/docker/flow-runner-base.Dockerfile makes one.
ARG BASE_IMAGE=bridgeai/flow-runner-base:bookworm

FROM ${BASE_IMAGE} AS install
# uv (the project's installer, from the context's tools/) installs and byte-compiles the wheels in
# parallel, several times faster than pip; it stays in this stage. Bytecode matters: the machines
# set PYTHONDONTWRITEBYTECODE, and start-up is 2-3x slower without it. Modules meant only for
# newer Pythons (whenever/_typing_312.py) do not compile and are skipped, as by `uv sync`.
COPY tools/uv /usr/local/bin/uv
ENV UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
RUN python3 -m venv --without-pip /opt/bridgeai/.venv
# Dependencies first: this layer changes only when uv.lock does. The test suites these packages
# ship (~150 MB) are never imported and go; other packages' `tests` modules stay (evidently's
# legacy API imports its own).
COPY wheels/ /tmp/wheels/
RUN uv pip install --python /opt/bridgeai/.venv/bin/python --offline --no-index --no-deps \
        --compile-bytecode --quiet /tmp/wheels/*.whl \
 && cd /opt/bridgeai/.venv/lib/python3*/site-packages \
 && find numpy pandas scipy sklearn pyarrow matplotlib statsmodels -depth -type d -name tests \
        -exec rm -rf {} +

FROM ${BASE_IMAGE}
ARG MODEL_BASE_IMAGE=python:3.11-slim
ARG BRIDGEAI_VERSION=
LABEL org.opencontainers.image.title="bridgeai-flow-runner" \
      org.opencontainers.image.description="BridgeAI flows for the kind Kubernetes work pool" \
      ai.bridgeai.version="${BRIDGEAI_VERSION}"
RUN useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin bridgeai
COPY --from=install /opt/bridgeai/.venv /opt/bridgeai/.venv
# ...then the project itself, in small layers of their own: a deploy after a code change rebuilds
# and pushes only these (the venv's pip, from the wheels above, installs the project's wheel).
COPY project/ /tmp/project/
RUN /opt/bridgeai/.venv/bin/python -m pip install --no-index --no-deps --no-cache-dir \
        --disable-pip-version-check --quiet /tmp/project/*.whl \
 && rm -rf /tmp/project
COPY app/ /opt/bridgeai/
# BRIDGEAI_BASE_IMAGE: the base of the model images build-model-image builds from here (it must
# be present in the Docker engine the Job reaches: the builds use no network).
ENV PATH=/opt/bridgeai/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BRIDGEAI_HOME=/tmp/bridgeai \
    PREFECT_HOME=/tmp/prefect \
    BRIDGEAI_MODEL_IMAGE_DIR=/opt/bridgeai/deployments/model-image \
    BRIDGEAI_BASE_IMAGE=${MODEL_BASE_IMAGE}
WORKDIR /opt/bridgeai
USER 1000
# The worker passes the command (prefect flow-run execute); this default just proves the install.
CMD ["python", "-c", "import bridgeai, flows, blocks; print('bridgeai', bridgeai.__version__)"]
