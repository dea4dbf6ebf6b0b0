# The flow-runner image for the `kind` Kubernetes work pool: the project installed from the
# committed uv.lock, the flows at the fixed path /opt/bridgeai/flows (prefect.yaml's kind
# deployments `set_working_directory` there), running as a non-root user.
#
# Build from the repository root:
#   docker build -f deployments/docker/flow-runner.Dockerfile -t localhost:5000/bridgeai/flow-runner:latest .
# (deployments/kind/up.sh does this and pushes to the Kind cluster's registry.)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
# uv from PyPI, pinned; no curl|sh installers.
RUN pip install --no-cache-dir "uv==0.13.9"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /opt/bridgeai
# Dependencies first (a layer that changes only with the lock file)...
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
# ...then the project itself.
COPY src ./src
COPY blocks ./blocks
COPY flows ./flows
# build-model-image reads its Dockerfile template from here.
COPY deployments/model-image ./deployments/model-image
RUN uv sync --locked --no-dev

FROM ${PYTHON_IMAGE}
# libgomp1: LightGBM's OpenMP runtime. git: DVC versions data in a git repository.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --shell /usr/sbin/nologin bridgeai
WORKDIR /opt/bridgeai
COPY --from=build --chown=bridgeai:bridgeai /opt/bridgeai /opt/bridgeai
COPY --chown=bridgeai:bridgeai prefect.yaml ./
ENV PATH=/opt/bridgeai/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BRIDGEAI_HOME=/tmp/bridgeai \
    PREFECT_HOME=/tmp/prefect
USER 1000
# The worker passes the command (prefect flow-run execute); this default just proves the install.
CMD ["python", "-c", "import bridgeai, flows, blocks; print('bridgeai', bridgeai.__version__)"]
