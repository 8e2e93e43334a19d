#!/usr/bin/env bash
# The stack on Docker Swarm, from the same compose.yaml (docs/deploy.md, "Docker Swarm"):
#   scripts/swarm.sh deploy   build the release, render the stack file, deploy it
#                             (a rolling update when the stack runs), verify HTTPS
#   scripts/swarm.sh down     remove the stack (its volumes stay)
#   scripts/swarm.sh ps       the stack's services and their tasks
# Settings come from ENV_FILE (default .env), as with compose. Also read:
#   STACK_NAME         the stack (default: the compose project's name)
#   SWARM_COMPOSE_FILE the files merged (default compose.yaml:compose.swarm.yaml)
#   APP_REPLICAS       app replicas (default 3), POSTGRES_MAX_CONNECTIONS (200)
# and scripts/stack.sh's health check options (HEALTH_CHECK_*, WAIT_TIMEOUT).
set -euo pipefail

# load_env, check_settings, https_check_setup, wait_for_https, image_repository...
# shellcheck source=scripts/stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

log() { printf '[swarm] %s\n' "$*"; }
die() { printf '[swarm] ERROR: %s\n' "$*" >&2; exit 1; }

SWARM_COMPOSE_FILE="${SWARM_COMPOSE_FILE:-compose.yaml:compose.swarm.yaml}"
DB_NODE_LABEL="fastapi-stack.db"

# Compose names the stack's volumes and networks after the project: the stack's.
swarm_compose() {
    if [[ -n "${STACK_NAME:-}" ]]; then
        COMPOSE_PROJECT_NAME="$STACK_NAME" COMPOSE_FILE="$SWARM_COMPOSE_FILE" "${COMPOSE[@]}" "$@"
    else
        COMPOSE_FILE="$SWARM_COMPOSE_FILE" "${COMPOSE[@]}" "$@"
    fi
}

stack_name() {
    [[ -n "${STACK_NAME:-}" ]] || STACK_NAME="$(swarm_compose config --format json |
        "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["name"])')"
}

# Where a stack file is deployed from: an active swarm's manager.
require_manager() {
    local state
    state="$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')"
    case "$state" in
        "active true") ;;
        "active false") die "this node is a swarm worker: deploy from a manager (docker node ls there)" ;;
        *) die "this engine is not in a swarm: docker swarm init --advertise-addr <this node's address> (docs/deploy.md, Docker Swarm)" ;;
    esac
}

# Postgres keeps its volume on one node: the one labelled for it. A one-node
# swarm's only node is labelled here; with more, the operator chooses.
require_db_node() {
    local labelled nodes
    labelled="$(docker node ls --filter "node.label=$DB_NODE_LABEL=true" --quiet | wc -l)"
    ((labelled == 0)) || return 0
    nodes="$(docker node ls --quiet | wc -l)"
    if ((nodes == 1)); then
        log "one-node swarm: labelling this node for the database ($DB_NODE_LABEL=true)"
        docker node update --label-add "$DB_NODE_LABEL=true" "$(docker node ls --quiet)" >/dev/null
        return
    fi
    die "no node is labelled for the database: docker node update --label-add $DB_NODE_LABEL=true <node> (its volume lives there)"
}

# A rolling update runs APP_REPLICAS + 1 app containers at once, each opening up
# to connections_per_container (scripts/stack.sh); 3 stay free for migrations and psql.
check_connection_budget() {
    local replicas="${APP_REPLICAS:-3}" max="${POSTGRES_MAX_CONNECTIONS:-200}" per_container need
    per_container="$(connections_per_container)"
    need=$(((replicas + 1) * per_container))
    if ((need > max - 3)); then
        die "$replicas replicas plus one during an update may open $need database connections ($per_container each), POSTGRES_MAX_CONNECTIONS is $max: raise it, or lower APP_REPLICAS, WEB_CONCURRENCY or the DB pools. Nothing was changed"
    fi
}

# Builds the app's image and names it by its id, so that each release is a new
# image reference (what makes swarm roll the service). A swarm of several nodes
# pulls it from a registry: APP_IMAGE must name one, and it is pushed.
build_release() {
    local image release nodes
    image="$(swarm_compose config --format json app | app_image_of_config)"
    log "building $image (revision $APP_REVISION)"
    explain_builder
    swarm_compose build app
    release="$(docker image inspect --format '{{.Id}}' "$image")"
    RELEASE_IMAGE="$(image_repository "$image"):${release:7:12}"
    docker tag "$release" "$RELEASE_IMAGE"
    nodes="$(docker node ls --quiet | wc -l)"
    if ((nodes > 1)); then
        log "pushing $RELEASE_IMAGE (the other nodes pull it)"
        docker push "$RELEASE_IMAGE" ||
            die "could not push $RELEASE_IMAGE: on a swarm of several nodes, APP_IMAGE must name a registry you are logged in to (docs/deploy.md, Docker Swarm)"
    fi
}

render_stack_file() {
    local dir="$1"
    APP_IMAGE="$RELEASE_IMAGE" swarm_compose config --format json |
        "${PYTHON:-python3}" -m scripts.swarm_stack --stack "$STACK_NAME" --files-dir "$dir" >"$dir/stack.json"
}

# The address of the node Traefik runs on, for the HTTPS check: its published port
# there, or (published nowhere, as in the test suite) its task's address on this
# node's docker_gwbridge.
traefik_address() {
    local task node container address
    task="$(docker service ps --filter desired-state=running --quiet "${STACK_NAME}_traefik" | head -n 1)"
    [[ -n "$task" ]] || return 1
    if [[ -n "$(docker service inspect --format '{{range .Endpoint.Ports}}{{.PublishedPort}}{{end}}' "${STACK_NAME}_traefik")" ]]; then
        node="$(docker inspect --format '{{.NodeID}}' "$task")"
        if [[ "$node" == "$(docker info --format '{{.Swarm.NodeID}}')" ]]; then
            echo 127.0.0.1
        else
            docker node inspect --format '{{.Status.Addr}}' "$node"
        fi
        return
    fi
    container="$(docker inspect --format '{{.Status.ContainerStatus.ContainerID}}' "$task")"
    address="$(docker network inspect docker_gwbridge --format "{{with index .Containers \"$container\"}}{{.IPv4Address}}{{end}}" 2>/dev/null)"
    [[ -n "$address" ]] || return 1
    echo "${address%/*}"
}

show_logs() {
    local service
    for service in "$@"; do
        docker service logs --tail 30 --no-task-ids "${STACK_NAME}_$service" 2>&1 || true
    done
}

# Swarm's record of the app's last update: empty on a first deploy, else
# completed, or rollback_completed when the new tasks never turned healthy.
update_state() {
    docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}: {{.UpdateStatus.Message}}{{end}}' "${STACK_NAME}_app"
}

# The migration job of this deploy: its last task's state.
check_migrations() {
    local state
    state="$(docker service ps --format '{{.CurrentState}}' "${STACK_NAME}_migrate" | head -n 1)"
    if [[ "$state" != Complete* ]]; then
        show_logs migrate >&2
        die "the migration job did not complete ($state): the new release is not ready, the previous one serves on"
    fi
}

# Secrets and configs are immutable and named by their content: drop the ones no
# service uses any more (one still in use cannot be removed, and stays).
prune_unused() {
    local dir="$1" kind name
    for kind in secret config; do
        docker "$kind" ls --filter "label=com.docker.stack.namespace=$STACK_NAME" --format '{{.Name}}' |
            while read -r name; do
                grep -qF "\"$name\"" "$dir/stack.json" || docker "$kind" rm "$name" >/dev/null 2>&1 || true
            done
    done
}

cmd_deploy() {
    load_env
    check_settings
    [[ -n "$CERT_RESOLVER" ]] ||
        die "on a swarm the certificate comes from the ACME CA: set CERT_RESOLVER=letsencrypt and a public DOMAIN (for a local trial, make up)"
    require_manager
    stack_name
    check_connection_budget
    require_db_node
    local started=$SECONDS dir status serving state
    build_release
    dir="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the directory is this deploy's
    trap "rm -rf '$dir'" EXIT
    render_stack_file "$dir"
    log "deploying $RELEASE_IMAGE as stack $STACK_NAME (${APP_REPLICAS:-3} app replicas; a rolling update if it runs)"
    # --detach=false: returns once every service has converged (or rolled back).
    set +e
    docker stack deploy --detach=false --prune \
        --compose-file "$dir/stack.json" "$STACK_NAME" 2>&1 | grep --line-buffered -v '^verify: Waiting'
    status="${PIPESTATUS[0]}"
    set -e
    serving="$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "${STACK_NAME}_app")"
    state="$(update_state)"
    if [[ "${serving%@*}" != "$RELEASE_IMAGE" || "$state" == rollback* || "$state" == paused* ]]; then
        show_logs app >&2
        # APP_IMAGE names what serves, as before this deploy.
        docker tag "${serving%@*}" "$(swarm_compose config --format json app | app_image_of_config)"
        die "the new release did not take over (${state:-no update}); ${serving%@*} serves on"
    fi
    ((status == 0)) || die "docker stack deploy failed (exit $status, see above)"
    check_migrations
    HEALTH_CHECK_ADDRESS="${HEALTH_CHECK_ADDRESS:-$(traefik_address || echo 127.0.0.1)}"
    wait_for_https
    prune_unused "$dir"
    docker stack services "$STACK_NAME"
    log "deployed $RELEASE_IMAGE in $((SECONDS - started))s: $(public_url)/docs"
}

cmd_ps() {
    load_env
    stack_name
    docker stack services "$STACK_NAME"
    docker stack ps --filter desired-state=running "$STACK_NAME"
}

cmd_down() {
    load_env
    stack_name
    docker stack rm "$STACK_NAME"
    log "removed stack $STACK_NAME; its volumes stay (docker volume ls)"
}

case "${1:-}" in
    deploy) cmd_deploy ;;
    ps) cmd_ps ;;
    down) cmd_down ;;
    *) die "usage: $0 deploy|ps|down" ;;
esac
