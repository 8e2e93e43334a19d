#!/usr/bin/env bash
# Deploy (or update) the stack with compose on the current Docker engine; fail
# unless every service is healthy and the API answers over verified HTTPS.
# It is what CI's deploy job runs on the server (`make deploy`,
# .github/workflows/deploy.yml), and what tests/stack runs against the local
# engine, so this path is tested.
#
# Needs an ENV_FILE (default .env) written beforehand: CI writes it from its
# secrets, and this script never invents secrets. The health check options
# (HEALTH_CHECK_CA_FILE, HEALTH_CHECK_INSECURE, HEALTH_CHECK_ADDRESS,
# WAIT_TIMEOUT) are scripts/stack.sh's. COMPOSE_FILE and COMPOSE_PROJECT_NAME
# work as in compose itself.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ENV_FILE="${ENV_FILE:-.env}"

log() { printf '[deploy] %s\n' "$*"; }
die() { printf '[deploy] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f "$ENV_FILE" ]] || die "$ENV_FILE not found: write it first (CI writes it from its secrets)"
command -v curl >/dev/null || die "curl is needed for the health check"
set -a
# shellcheck disable=SC1090
source "$ENV_FILE"
set +a
for name in DOMAIN SECRET_KEY POSTGRES_USER POSTGRES_PW POSTGRES_DB; do
    [[ -n "${!name:-}" ]] || die "$name is empty in $ENV_FILE"
done

start=$SECONDS
log "validating the compose configuration"
docker compose --env-file "$ENV_FILE" config --quiet
# First deploy: build, migrate (one-shot service), start, wait for healthchecks
# and HTTPS. Later ones: the new release starts beside the running one, which is
# retired once Traefik routes to the new containers; no request is dropped, and
# a release that is not healthy in time is removed again (docs/deploy.md,
# "Zero-downtime deploys").
scripts/stack.sh deploy
log "deployed in $((SECONDS - start))s"
