#!/usr/bin/env bash
# Create (or update) the work pools that prefect.yaml's deployments target:
#   local  process pool   (flows run as processes on this machine: `bridgeai up` starts its worker)
#   kind   kubernetes pool (flow runs are Jobs on the Kind cluster, from ./kubernetes.json)
# Uses whatever Prefect API PREFECT_API_URL points at. Pass pool names to create only some.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefect="${PREFECT:-prefect}"
pools=("$@")
if [ "${#pools[@]}" -eq 0 ]; then
    pools=(local kind)
fi

for pool in "${pools[@]}"; do
    case "$pool" in
        local)
            "$prefect" --no-prompt work-pool create local --type process --overwrite
            ;;
        kind)
            "$prefect" --no-prompt work-pool create kind --type kubernetes \
                --base-job-template "$here/kubernetes.json" --overwrite
            ;;
        *)
            echo "unknown pool '$pool' (expected: local, kind)" >&2
            exit 2
            ;;
    esac
done
