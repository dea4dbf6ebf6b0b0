#!/usr/bin/env bash
# Delete the BridgeAI Kind cluster. The local registry container and the generated credentials
# ($BRIDGEAI_HOME/kind/secrets.env) are kept unless asked:
#   deployments/kind/down.sh [--registry] [--purge]
#     --registry  also remove the kind-registry container (and its images)
#     --purge     also delete the generated credentials
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cluster="${KIND_CLUSTER_NAME:-bridgeai}"
state_dir="${BRIDGEAI_HOME:-$repo/.bridgeai}/kind"
remove_registry=false
purge=false
for arg in "$@"; do
    case "$arg" in
        --registry) remove_registry=true ;;
        --purge) purge=true ;;
        -h | --help)
            sed -n '2,6p' "$0"
            exit 0
            ;;
        *)
            echo "unknown option '$arg' (expected --registry, --purge)" >&2
            exit 2
            ;;
    esac
done

command -v kind >/dev/null 2>&1 || { echo "error: kind is not installed" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    kind delete cluster --name "$cluster"
else
    echo "no kind cluster named '$cluster'"
fi
if [ "$remove_registry" = true ]; then
    docker rm -f kind-registry >/dev/null 2>&1 && echo "removed kind-registry" || echo "no kind-registry container"
fi
if [ "$purge" = true ]; then
    rm -f "$state_dir/secrets.env" && echo "removed $state_dir/secrets.env"
fi
