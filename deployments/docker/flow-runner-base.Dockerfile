# The flow-runner image's base: Debian bookworm's Python 3.11 plus what the flows need beyond
# Python packages: git (data versions are git commits and tags), libgomp1 (LightGBM's OpenMP) and
# CA certificates. The one build step that needs the network (Debian's mirror); everything
# on top of it (deployments/docker/flow-runner.Dockerfile) builds offline.
#
#   docker build --network host -f deployments/docker/flow-runner-base.Dockerfile \
#       --build-arg PYTHON_IMAGE=bridgeai/python-base:bookworm -t bridgeai/flow-runner-base:bookworm .
#
# PYTHON_IMAGE: the offline debootstrapped base of .ci/docker.sh, or python:3.11-slim-bookworm
# where Docker Hub is reachable (deployments/kind/up.sh).
ARG PYTHON_IMAGE=bridgeai/python-base:bookworm
FROM ${PYTHON_IMAGE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        git libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /usr/share/doc/* /usr/share/man/*
