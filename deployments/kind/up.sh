#!/usr/bin/env bash
# Bring up BridgeAI on a local Kind cluster:
#   Kind cluster (ingress on host ports 3080/3443) + local registry localhost:5000
#   ingress-nginx, cert-manager, KServe (RawDeployment), MinIO (artifacts, evidently-reports,
#   mlflow), PostgreSQL (MLflow, Prefect, predictions), MLflow, the git server of the data
#   versions, Prefect server + Kubernetes worker + the job reporter, the prediction service;
#   the `kind` work pool from its template; the blocks; every deployment (pinned on the
#   flow-runner image built from this checkout).
#
# Prerequisites: docker, kind, kubectl, helm, and this repository's environment (`make sync`).
# Credentials come from the environment (see docs/kind.md); any that are unset are generated
# once and kept in $BRIDGEAI_HOME/kind/secrets.env (mode 0600). None is printed.
#
# Usage: deployments/kind/up.sh            (idempotent: re-run to update)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cluster="${KIND_CLUSTER_NAME:-bridgeai}"
namespace=bridgeai
registry_name=kind-registry
registry_port=5000
flow_repository="localhost:${registry_port}/bridgeai/flow-runner"
flow_image="${flow_repository}:latest"
flow_base=bridgeai/flow-runner-base:bookworm
model_base="${BRIDGEAI_BASE_IMAGE:-python:3.11-slim}"
state_dir="${BRIDGEAI_HOME:-$repo/.bridgeai}/kind"
python="${PYTHON:-$repo/.venv/bin/python}"
prefect="${PREFECT:-$repo/.venv/bin/prefect}"

log() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# -- prerequisites ------------------------------------------------------------------------------
for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (see docs/kind.md, Prerequisites)"
done
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable: start it, or set DOCKER_HOST"
[ -x "$python" ] || die "$python not found: run 'make sync' in $repo first (or set PYTHON)"
mem_kib="$(awk '/MemTotal/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
if [ "$mem_kib" -gt 0 ] && [ "$mem_kib" -lt $((12 * 1024 * 1024)) ]; then
    echo "warning: $((mem_kib / 1024 / 1024)) GiB RAM; the full stack wants about 12 GiB" >&2
fi

# -- credentials from the environment (generated once when unset) -------------------------------
mkdir -p "$state_dir"
secrets_file="$state_dir/secrets.env"
if [ -f "$secrets_file" ]; then
    # shellcheck disable=SC1090
    source "$secrets_file"
fi
gen() { "$python" -c 'import secrets; print(secrets.token_hex(16))'; }
: "${BRIDGEAI_S3_ACCESS_KEY:=bridgeai-$(gen | cut -c1-8)}"
: "${BRIDGEAI_S3_SECRET_KEY:=$(gen)}"
: "${BRIDGEAI_POSTGRES_PASSWORD:=$(gen)}"
: "${BRIDGEAI_MLFLOW_USERNAME:=}"
: "${BRIDGEAI_MLFLOW_PASSWORD:=}"
: "${BRIDGEAI_GIT_USERNAME:=bridgeai}"
: "${BRIDGEAI_GIT_TOKEN:=$(gen)}"
: "${BRIDGEAI_REGISTRY_USERNAME:=}"
: "${BRIDGEAI_REGISTRY_PASSWORD:=}"
(
    umask 077
    {
        printf 'BRIDGEAI_S3_ACCESS_KEY=%q\n' "$BRIDGEAI_S3_ACCESS_KEY"
        printf 'BRIDGEAI_S3_SECRET_KEY=%q\n' "$BRIDGEAI_S3_SECRET_KEY"
        printf 'BRIDGEAI_POSTGRES_PASSWORD=%q\n' "$BRIDGEAI_POSTGRES_PASSWORD"
        printf 'BRIDGEAI_GIT_TOKEN=%q\n' "$BRIDGEAI_GIT_TOKEN"
    } >"$secrets_file"
)

# -- registry + cluster -------------------------------------------------------------------------
log "local registry localhost:${registry_port}"
if [ "$(docker inspect -f '{{.State.Running}}' "$registry_name" 2>/dev/null || true)" != "true" ]; then
    docker rm -f "$registry_name" >/dev/null 2>&1 || true
    docker run -d --restart=always -p "127.0.0.1:${registry_port}:5000" --network bridge \
        --name "$registry_name" "$REGISTRY_IMAGE" >/dev/null
fi

log "kind cluster '$cluster' ($KIND_NODE_IMAGE)"
if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    kind create cluster --name "$cluster" --image "$KIND_NODE_IMAGE" --config "$here/cluster.yaml" --wait 120s
fi
kubectl config use-context "kind-$cluster" >/dev/null

# Each node resolves localhost:5000 to the registry container (kind's local-registry recipe).
for node in $(kind get nodes --name "$cluster"); do
    docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${registry_port}"
    printf '[host."http://%s:5000"]\n' "$registry_name" |
        docker exec -i "$node" tee "/etc/containerd/certs.d/localhost:${registry_port}/hosts.toml" >/dev/null
done
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$registry_name")" = "null" ]; then
    docker network connect kind "$registry_name"
fi
kubectl apply -f "$here/manifests/local-registry-hosting.yaml"

log "flow-runner image $flow_image"
# The base needs Debian's mirror (git, libgomp1); the flow-runner image on top builds offline from
# wheels of this environment (bridgeai.ops.flow_runner). The model images' base must be in the
# host's engine too: build-model-image builds with no network.
docker build --network host -f "$repo/deployments/docker/flow-runner-base.Dockerfile" \
    --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm -t "$flow_base" "$repo/deployments/docker"
docker image inspect "$model_base" >/dev/null 2>&1 || docker pull "$model_base"
"$python" -m bridgeai.ops.flow_runner --repository "$flow_repository" --base-image "$flow_base" \
    --model-base-image "$model_base" --push

# -- namespace and Secrets (values from the environment, never from files in git) ---------------
log "namespace $namespace and Secrets"
kubectl apply -f "$here/manifests/namespace.yaml"
apply_secret() {  # name, then key=value pairs
    local name="$1"
    shift
    local args=()
    for pair in "$@"; do args+=("--from-literal=$pair"); done
    kubectl -n "$namespace" create secret generic "$name" "${args[@]}" \
        --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    echo "secret/$name applied"
}
pg_url="postgres.${namespace}.svc.cluster.local:5432"
apply_secret bridgeai-s3 "access-key-id=$BRIDGEAI_S3_ACCESS_KEY" "secret-access-key=$BRIDGEAI_S3_SECRET_KEY"
apply_secret bridgeai-minio "rootUser=$BRIDGEAI_S3_ACCESS_KEY" "rootPassword=$BRIDGEAI_S3_SECRET_KEY"
apply_secret bridgeai-postgres "password=$BRIDGEAI_POSTGRES_PASSWORD"
apply_secret prefect-server-database \
    "connection-string=postgresql+asyncpg://bridgeai:${BRIDGEAI_POSTGRES_PASSWORD}@${pg_url}/prefect"
apply_secret bridgeai-predictions-db \
    "database-url=postgresql://bridgeai:${BRIDGEAI_POSTGRES_PASSWORD}@${pg_url}/predictions"
if [ -n "$BRIDGEAI_MLFLOW_USERNAME" ]; then
    apply_secret bridgeai-mlflow "username=$BRIDGEAI_MLFLOW_USERNAME" "password=$BRIDGEAI_MLFLOW_PASSWORD"
fi
apply_secret bridgeai-git "username=$BRIDGEAI_GIT_USERNAME" "token=$BRIDGEAI_GIT_TOKEN"

# -- charts (pinned in versions.env) --------------------------------------------------------------
chart() {  # release, namespace, "repo|chart|version", values file
    local release="$1" ns="$2" spec="$3" values="$4"
    local repo_url chart_name version
    IFS='|' read -r repo_url chart_name version <<<"$spec"
    log "helm $release ($chart_name $version)"
    if [[ "$repo_url" == oci://* ]]; then
        helm upgrade --install "$release" "$repo_url/$chart_name" --version "$version" \
            --namespace "$ns" --create-namespace -f "$values" --wait --timeout 10m
    else
        helm upgrade --install "$release" "$chart_name" --repo "$repo_url" --version "$version" \
            --namespace "$ns" --create-namespace -f "$values" --wait --timeout 10m
    fi
}
chart ingress-nginx ingress-nginx "$CHART_INGRESS_NGINX" "$here/values/ingress-nginx.yaml"
chart cert-manager cert-manager "$CHART_CERT_MANAGER" "$here/values/cert-manager.yaml"
chart kserve-crd kserve "$CHART_KSERVE_CRD" "$here/values/kserve.yaml"
chart kserve kserve "$CHART_KSERVE" "$here/values/kserve.yaml"
chart minio "$namespace" "$CHART_MINIO" "$here/values/minio.yaml"

log "PostgreSQL and MLflow"
kubectl apply -f "$here/manifests/postgres.yaml"
kubectl -n "$namespace" rollout status statefulset/postgres --timeout=5m
kubectl apply -f "$here/manifests/mlflow.yaml" -f "$here/manifests/git-server.yaml"

chart prefect-server "$namespace" "$CHART_PREFECT_SERVER" "$here/values/prefect-server.yaml"
kubectl apply -f "$here/manifests/flow-rbac.yaml" -f "$here/manifests/ingress.yaml"
kubectl apply -f "$here/manifests/prediction-service.yaml" -f "$here/manifests/job-reporter.yaml"
kubectl -n "$namespace" rollout status deployment/mlflow --timeout=5m
kubectl -n "$namespace" rollout status deployment/git-server --timeout=5m

# The prediction service's HPA (docs/scaling.md): replicas from BRIDGEAI_PREDICTION_MIN_REPLICAS
# and BRIDGEAI_PREDICTION_MAX_REPLICAS (default 1 and 1).
kubectl apply -f "$here/manifests/prediction-service-hpa.yaml"
if [ -n "${BRIDGEAI_PREDICTION_MIN_REPLICAS:-}${BRIDGEAI_PREDICTION_MAX_REPLICAS:-}" ]; then
    kubectl -n "$namespace" patch hpa prediction-service --type merge -p \
        "{\"spec\": {\"minReplicas\": ${BRIDGEAI_PREDICTION_MIN_REPLICAS:-1}, \"maxReplicas\": ${BRIDGEAI_PREDICTION_MAX_REPLICAS:-1}}}"
fi

# -- Prefect: pools, blocks, deployments, worker --------------------------------------------------
export PREFECT_API_URL="http://localhost:3080/api"
log "waiting for $PREFECT_API_URL"
for _ in $(seq 1 90); do
    if curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1; then break; fi
    sleep 2
done
curl -fsS "$PREFECT_API_URL/health" >/dev/null || die "the Prefect API did not answer at $PREFECT_API_URL"
PREFECT="$prefect" "$repo/deployments/work-pools/create-pools.sh" kind local
# The blocks carry the credentials only our code uses (the git token, optional registry login).
(cd "$repo" && BRIDGEAI_GIT_USERNAME="$BRIDGEAI_GIT_USERNAME" BRIDGEAI_GIT_TOKEN="$BRIDGEAI_GIT_TOKEN" \
    BRIDGEAI_REGISTRY_USERNAME="$BRIDGEAI_REGISTRY_USERNAME" \
    BRIDGEAI_REGISTRY_PASSWORD="$BRIDGEAI_REGISTRY_PASSWORD" "$python" "$here/configure_blocks.py")
# The kind deployments' build step rebuilds the flow-runner image from this checkout (cached
# layers: seconds when only flows changed) and pins each deployment on its digest.
(cd "$repo" && BRIDGEAI_FLOW_RUNNER_BUILD=1 BRIDGEAI_FLOW_RUNNER_BASE_IMAGE="$flow_base" \
    BRIDGEAI_BASE_IMAGE="$model_base" "$prefect" --no-prompt deploy --all)
chart prefect-worker "$namespace" "$CHART_PREFECT_WORKER" "$here/values/prefect-worker.yaml"

log "ready"
cat <<URLS
Prefect UI        http://localhost:3080/          (API http://localhost:3080/api)
MLflow UI         http://localhost:3080/mlflow/   (tracking URI http://localhost:3080/mlflow)
MinIO console     kubectl -n $namespace port-forward svc/minio-console 9001:9001  -> http://localhost:9001
Prediction API    kubectl -n $namespace port-forward svc/prediction-service 8000:80 -> http://localhost:8000/swagger
Registry          localhost:${registry_port}  (images: ${flow_image%:*}, bridgeai/bridgeai-mlops)
Credentials       $secrets_file

Run the pipeline: PREFECT_API_URL=$PREFECT_API_URL $prefect deployment run mlops-pipeline/kind
URLS
