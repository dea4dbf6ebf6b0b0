#!/usr/bin/env bash
# A private Docker engine, an htpasswd-protected registry and an offline Python base image, for
# the Docker tests (tests marked `docker`), in CI and on a developer's machine.
#
#   bash .ci/docker.sh up      start all three (idempotent), then: source /tmp/bridgeai-docker/env
#   bash .ci/docker.sh down    stop the registry and the engine (keeps the base image cache)
#   bash .ci/docker.sh purge   down, then delete everything under $BRIDGEAI_DOCKER_DIR
#   bash .ci/docker.sh status  say what is running
#
# Or source it and call docker_up / docker_down (what .ci/run does): docker_up exports the
# variables the tests read (DOCKER_HOST, BRIDGEAI_TEST_REGISTRY, ..._USER, ..._PASSWORD,
# BRIDGEAI_TEST_BASE_IMAGE) into the calling shell.
#
# Everything lives under $BRIDGEAI_DOCKER_DIR (default /tmp/bridgeai-docker): the engine listens on
# a private socket there, never on /var/run/docker.sock, and has no bridge or iptables rules
# (containers use host networking). No public registry is reachable here, so the base image is
# made with debootstrap from the Debian mirror and `docker import`; the flow-runner base adds git
# on top of it (deployments/docker/flow-runner-base.Dockerfile).

BRIDGEAI_DOCKER_DIR="${BRIDGEAI_DOCKER_DIR:-/tmp/bridgeai-docker}"
BRIDGEAI_BASE_IMAGE="${BRIDGEAI_BASE_IMAGE:-bridgeai/python-base:bookworm}"
# The flow-runner image's base (the cluster tests): the base above plus git, from Debian's mirror.
BRIDGEAI_FLOW_RUNNER_BASE="${BRIDGEAI_FLOW_RUNNER_BASE:-bridgeai/flow-runner-base:bookworm}"
_DK_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BRIDGEAI_DEBIAN_MIRROR="${BRIDGEAI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

_dk_log() { echo "[docker.sh] $*" >&2; }

_dk_socket() { echo "unix://${BRIDGEAI_DOCKER_DIR}/docker.sock"; }

_dk_docker() { docker -H "$(_dk_socket)" "$@"; }

_dk_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

_dk_wait() {  # _dk_wait <seconds> <what> <command...>
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            _dk_log "$what did not come up within ${seconds}s"
            return 1
        fi
        sleep 0.5
    done
}

_dk_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    ((${#missing[@]} == 0)) && return 0
    _dk_log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null
}

_dk_engine_up() {
    local dir=$BRIDGEAI_DOCKER_DIR
    if _dk_alive "$dir/dockerd.pid" && _dk_docker version >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p "$dir/data" "$dir/exec"
    echo '{}' >"$dir/daemon.json"  # ignore any /etc/docker/daemon.json of the host
    _dk_log "starting dockerd on $(_dk_socket)"
    setsid dockerd \
        --config-file "$dir/daemon.json" \
        --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
        --host "$(_dk_socket)" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/dockerd.pid" >"$dir/dockerd.log" 2>&1 </dev/null &
    if ! _dk_wait 90 dockerd _dk_docker version; then
        tail -n 20 "$dir/dockerd.log" >&2
        return 1
    fi
}

_dk_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_dk_registry_up() {
    local dir=$BRIDGEAI_DOCKER_DIR/registry
    mkdir -p "$dir/storage"
    if _dk_alive "$dir/registry.pid" && [[ -f "$dir/credentials" ]]; then
        return 0
    fi
    local port user password
    port=$(_dk_free_port)
    user=bridgeai-ci
    password=$(openssl rand -hex 18)
    (umask 077 && printf '%s\n%s\n%s\n' "127.0.0.1:$port" "$user" "$password" >"$dir/credentials")
    htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $(openssl rand -hex 16)
auth:
  htpasswd:
    realm: bridgeai-ci
    path: $dir/htpasswd
EOF
    _dk_log "starting docker-registry on 127.0.0.1:$port (htpasswd auth)"
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    # An unauthenticated /v2/ answers 401 once the registry is up.
    if ! _dk_wait 30 docker-registry \
        bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/v2/) == 401 ]]"; then
        tail -n 20 "$dir/registry.log" >&2
        return 1
    fi
}

_dk_base_image() {
    local dir=$BRIDGEAI_DOCKER_DIR
    if _dk_docker image inspect "$BRIDGEAI_BASE_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    local tarball=$dir/base-rootfs.tar
    if [[ ! -s $tarball ]]; then
        _dk_log "building the base root filesystem with debootstrap (about a minute)"
        local rootfs=$dir/rootfs
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,libgomp1 \
            bookworm "$rootfs" "$BRIDGEAI_DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1 || {
            tail -n 20 "$dir/debootstrap.log" >&2
            return 1
        }
        # What a runtime image never needs: package caches, docs, man pages, locales.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
            "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
        tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    _dk_log "importing $BRIDGEAI_BASE_IMAGE"
    _dk_docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        "$tarball" "$BRIDGEAI_BASE_IMAGE" >/dev/null
}

_dk_flow_runner_base() {
    if _dk_docker image inspect "$BRIDGEAI_FLOW_RUNNER_BASE" >/dev/null 2>&1; then
        return 0
    fi
    _dk_log "building $BRIDGEAI_FLOW_RUNNER_BASE (git from the Debian mirror, host network)"
    _dk_docker build --network host -q \
        -f "$_DK_REPO/deployments/docker/flow-runner-base.Dockerfile" \
        --build-arg "PYTHON_IMAGE=$BRIDGEAI_BASE_IMAGE" -t "$BRIDGEAI_FLOW_RUNNER_BASE" \
        "$_DK_REPO/deployments/docker" >/dev/null
}

_dk_write_env() {
    local dir=$BRIDGEAI_DOCKER_DIR registry user password
    { read -r registry; read -r user; read -r password; } <"$dir/registry/credentials"
    (
        umask 077
        cat >"$dir/env" <<EOF
export DOCKER_HOST=$(_dk_socket)
export BRIDGEAI_TEST_REGISTRY=$registry
export BRIDGEAI_TEST_REGISTRY_USER=$user
export BRIDGEAI_TEST_REGISTRY_PASSWORD=$password
export BRIDGEAI_TEST_BASE_IMAGE=$BRIDGEAI_BASE_IMAGE
EOF
    )
}

docker_up() {
    local started=$SECONDS
    _dk_packages || return 1
    _dk_engine_up || return 1
    _dk_registry_up || return 1
    _dk_base_image || return 1
    _dk_flow_runner_base || return 1
    _dk_write_env
    # shellcheck disable=SC1091
    source "$BRIDGEAI_DOCKER_DIR/env"
    _dk_log "ready in $((SECONDS - started))s: source $BRIDGEAI_DOCKER_DIR/env"
}

_dk_stop_pid() {  # _dk_stop_pid <pidfile> <name>
    local pidfile=$1 pid
    _dk_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        _dk_log "$2 ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

docker_down() {
    local dir=$BRIDGEAI_DOCKER_DIR
    if _dk_alive "$dir/dockerd.pid"; then
        # Containers the tests left behind (only on this private engine).
        local leftovers
        leftovers=$(_dk_docker ps -aq 2>/dev/null)
        # shellcheck disable=SC2086
        [[ -n $leftovers ]] && _dk_docker rm -f $leftovers >/dev/null 2>&1
    fi
    _dk_stop_pid "$dir/registry/registry.pid" docker-registry
    _dk_stop_pid "$dir/dockerd.pid" dockerd
    # dockerd leaves its network namespace mounted (no bridge); nothing else is left mounted.
    umount "$dir/exec/netns/default" 2>/dev/null || true
    rm -f "$dir/registry/credentials" "$dir/env"
    _dk_log "stopped"
}

docker_purge() {
    docker_down
    # Unmount anything overlay2 left mounted before deleting its folders.
    # (grep finds nothing when nothing is left mounted: that is success, not an error.)
    { grep -o " $BRIDGEAI_DOCKER_DIR/[^ ]*" /proc/mounts || true; } | sort -r |
        xargs -r -n1 umount -l 2>/dev/null || true
    if ! rm -rf "$BRIDGEAI_DOCKER_DIR"; then
        _dk_log "could not delete everything under $BRIDGEAI_DOCKER_DIR"
        return 1
    fi
}

docker_status() {
    local dir=$BRIDGEAI_DOCKER_DIR
    if _dk_alive "$dir/dockerd.pid"; then echo "dockerd   running ($(_dk_socket))"; else echo "dockerd   stopped"; fi
    if _dk_alive "$dir/registry/registry.pid"; then
        echo "registry  running ($(head -n1 "$dir/registry/credentials" 2>/dev/null))"
    else
        echo "registry  stopped"
    fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -uo pipefail
    case "${1:-}" in
    up) docker_up ;;
    down) docker_down ;;
    purge) docker_purge ;;
    status) docker_status ;;
    *)
        echo "usage: $0 up|down|purge|status" >&2
        exit 2
        ;;
    esac
fi
