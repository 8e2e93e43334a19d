#!/usr/bin/env bash
# The compose stack's day-to-day tasks, called by the Makefile:
#   scripts/stack.sh up              certificates if local, build, start, wait, print the URL
#   scripts/stack.sh deploy          up, or a new release beside the running one, then the old retired
#   scripts/stack.sh migrate         alembic upgrade head (stack running: in it; else locally)
#   scripts/stack.sh superuser       create FIRST_SUPERUSER_* if missing (idempotent)
#   scripts/stack.sh backup          pg_dump -Fc to $BACKUP_DIR/<UTC time>.dump (default backups/)
#   scripts/stack.sh restore FILE    pg_restore FILE over the stack's database
#   scripts/stack.sh local-certs     (re)make the local CA and DOMAIN's certificate
#   scripts/stack.sh trust-ca [FILE] trust the local CA (or FILE) in Chromium's NSS database
# ENV_FILE (default .env) is the settings file; compose reads the same one.
# `up` waits (WAIT_TIMEOUT, 180 s) for healthy containers, then for a healthy
# answer over verified HTTPS; HEALTH_CHECK_CA_FILE, HEALTH_CHECK_INSECURE=true
# and HEALTH_CHECK_ADDRESS adjust that check (see wait_for_https).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ENV_FILE="${ENV_FILE:-.env}"
COMPOSE=(docker compose --env-file "$ENV_FILE")
WAIT_TIMEOUT="${WAIT_TIMEOUT:-180}"

log() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

load_env() {
    if [[ ! -f "$ENV_FILE" ]]; then
        # First use: a fresh .env with random secrets (same as `make .env`).
        [[ "$ENV_FILE" == .env ]] || die "$ENV_FILE not found"
        "${PYTHON:-python3}" scripts/init_env.py
    fi
    # Values are single-quoted in .env, so sourcing keeps them literal.
    set -a
    # shellcheck disable=SC1090
    source "$ENV_FILE"
    set +a
    DOMAIN="${DOMAIN:-stack.localhost}"
    CERT_RESOLVER="${CERT_RESOLVER:-}"
    LOCAL_CERTS_DIR="${LOCAL_CERTS_DIR:-./.local/certs}"
    # The image's org.opencontainers.image.revision label (Dockerfile).
    APP_REVISION="${APP_REVISION:-$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)}"
    export APP_REVISION
}

# Refuse settings that would start a broken or unsafe stack.
check_settings() {
    case "$CERT_RESOLVER" in
        "") ;;
        letsencrypt)
            # Let's Encrypt validates public names only (a private ACME CA may not).
            if [[ "${ACME_CA_SERVER:-https://acme-v02.api.letsencrypt.org/directory}" == *api.letsencrypt.org* ]]; then
                case "$DOMAIN" in
                    localhost | *.localhost | *.local | *.test | *.internal | *.lan)
                        die "Let's Encrypt cannot validate $DOMAIN (not a public name); set CERT_RESOLVER='' for the local certificate" ;;
                esac
            fi
            if [[ -z "${ACME_EMAIL:-}" ]]; then
                log "warning: ACME_EMAIL is empty: the CA cannot reach you about your certificates"
            fi
            ;;
        *) die "CERT_RESOLVER must be '' (local certificate) or 'letsencrypt', not '$CERT_RESOLVER'" ;;
    esac
    if [[ ",${COMPOSE_PROFILES:-}," == *,mail-catcher,* && "${ENVIRONMENT:-local}" == production ]]; then
        die "the mail catcher (COMPOSE_PROFILES=mail-catcher) is for development: it would swallow every mail and show them at https://mail.$DOMAIN. Remove it from COMPOSE_PROFILES and set SMTP_HOST to your provider (docs/mail.md, Setting up SMTP)"
    fi
    if [[ "${TRAEFIK_DASHBOARD:-false}" == true && -z "${TRAEFIK_DASHBOARD_USERS:-}" ]]; then
        die "TRAEFIK_DASHBOARD=true needs TRAEFIK_DASHBOARD_USERS (htpasswd -nbB admin 'a-password')"
    fi
}

# A local CA (made once, kept) and a certificate for DOMAIN and *.DOMAIN signed
# by it (remade when missing, for another DOMAIN, or expiring within 30 days).
# Traefik serves it as its default certificate (traefik/dynamic/local-certificate.yml).
local_certs() {
    local dir="$LOCAL_CERTS_DIR" ext
    mkdir -p "$dir"
    chmod 700 "$dir"
    if [[ ! -s "$dir/ca.crt" || ! -s "$dir/ca.key" ]]; then
        log "creating a local CA in $dir (valid 10 years; its key never leaves this folder)"
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -days 3650 -keyout "$dir/ca.key" -out "$dir/ca.crt" \
            -subj "/O=FastAPI Stack/CN=FastAPI Stack local CA ($(hostname))" \
            -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        rm -f "$dir/tls.crt"
    fi
    if [[ -s "$dir/tls.crt" && -s "$dir/tls.key" ]] \
        && openssl x509 -in "$dir/tls.crt" -noout -checkend $((30 * 86400)) >/dev/null \
        && openssl x509 -in "$dir/tls.crt" -noout -ext subjectAltName 2>/dev/null | grep -qF "DNS:$DOMAIN," \
        && openssl verify -CAfile "$dir/ca.crt" "$dir/tls.crt" >/dev/null 2>&1; then
        return
    fi
    log "signing a certificate for $DOMAIN and *.$DOMAIN with the local CA"
    ext="$(mktemp)"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN" >"$ext"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$DOMAIN" 2>/dev/null
    # 365 days: within Mozilla's intermediate TLS profile (at most 366; browsers
    # accept up to 397). Remade 30 days before it expires.
    openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$dir/tls.crt" 2>/dev/null
    rm -f "$ext" "$dir/tls.csr"
    chmod 600 "$dir"/*.key
}

CA_NICKNAME="fastapi-stack-local-ca"

# Chrome and Chromium on Linux trust what $HOME/.pki/nssdb holds. That database
# exists only once Chromium has run: create it (empty password) when missing.
cmd_trust_ca() {
    local ca="${1:-}" nssdb="$HOME/.pki/nssdb"
    if [[ -z "$ca" ]]; then
        load_env
        ca="$LOCAL_CERTS_DIR/ca.crt"
    fi
    [[ -f "$ca" ]] || die "$ca does not exist: make up creates it"
    command -v certutil >/dev/null || die "certutil is missing: sudo apt-get install libnss3-tools"
    mkdir -p "$nssdb"
    if ! certutil -d "sql:$nssdb" -L >/dev/null 2>&1; then
        certutil -d "sql:$nssdb" -N --empty-password
    fi
    certutil -d "sql:$nssdb" -A -t "C,," -n "$CA_NICKNAME" -i "$ca"
    log "Chromium trusts $ca (as $CA_NICKNAME in $nssdb): restart it"
}

print_trust_hint() {
    local ca="$LOCAL_CERTS_DIR/ca.crt"
    cat <<EOF
[stack] The certificate is signed by this project's local CA: $ca
[stack] Trust it once (then restart the browser):
[stack]   curl:            curl --cacert $ca https://$DOMAIN/api/health
[stack]   Debian/Ubuntu:   sudo cp $ca /usr/local/share/ca-certificates/$CA_NICKNAME.crt && sudo update-ca-certificates
[stack]   Chrome/Chromium on Linux: make trust-ca
[stack]   Firefox:         Settings, Certificates, Import $ca (trust it for websites)
[stack]   macOS:           sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain $ca
[stack]   Windows:         certutil -addstore -f ROOT ca.crt
EOF
}

public_url() {
    local port="${HTTPS_PORT:-443}"
    if [[ "$port" == 443 ]]; then echo "https://$DOMAIN"; else echo "https://$DOMAIN:$port"; fi
}

stack_running() {
    [[ -n "$("${COMPOSE[@]}" ps --status running --quiet "$1" 2>/dev/null)" ]]
}

# Sets CHECK_ORIGIN (https://DOMAIN:port) and CHECK_CURL (curl and its options)
# for requests through Traefik as a client sends them, certificate verified.
# Reaches this machine's published port without DNS, unless
# HEALTH_CHECK_ADDRESS says where DOMAIN lives.
https_check_setup() {
    local port="${HTTPS_PORT:-443}" address
    address="${HEALTH_CHECK_ADDRESS:-${BIND_ADDRESS:-127.0.0.1}}"
    [[ "$address" != 0.0.0.0 ]] || address=127.0.0.1
    CHECK_ORIGIN="https://${DOMAIN}:${port}"
    CHECK_CURL=(curl --silent --show-error --fail --max-time 5 --resolve "${DOMAIN}:${port}:${address}")
    if [[ "${HEALTH_CHECK_INSECURE:-false}" == true ]]; then
        CHECK_CURL+=(--insecure)
    elif [[ -n "$CERT_RESOLVER" && "${ACME_CA_SERVER:-}" == *acme-staging* ]]; then
        log "Let's Encrypt staging: its certificates are untrusted by design, not verifying"
        CHECK_CURL+=(--insecure)
    elif [[ -n "${HEALTH_CHECK_CA_FILE:-}" ]]; then
        CHECK_CURL+=(--cacert "$HEALTH_CHECK_CA_FILE")
    elif [[ -z "$CERT_RESOLVER" ]]; then
        CHECK_CURL+=(--cacert "$LOCAL_CERTS_DIR/ca.crt")
    fi
}

show_logs() {
    "${COMPOSE[@]}" logs --tail=30 "$@"
}

# Healthy containers are not enough: wait until a client gets a healthy answer
# through Traefik, over HTTPS with the certificate verified for DOMAIN (a new
# ACME certificate can take a moment).
wait_for_https() {
    local url body deadline
    https_check_setup
    url="${CHECK_ORIGIN}/api/health/ready"
    log "waiting for $url (verified HTTPS through Traefik, up to ${WAIT_TIMEOUT}s)"
    deadline=$((SECONDS + WAIT_TIMEOUT))
    until body="$("${CHECK_CURL[@]}" "$url" 2>&1)"; do
        if ((SECONDS >= deadline)); then
            show_logs traefik app >&2 || true
            die "$url did not answer healthy over verified HTTPS: $body"
        fi
        sleep 1
    done
}

# Compose builds through BuildKit's Bake when the buildx plugin is installed; without
# it (Debian's docker.io, for one) it warns at every build and uses its own builder.
# COMPOSE_BAKE=false only trades that warning for a deprecation: say what it means.
explain_builder() {
    docker buildx version >/dev/null 2>&1 && return
    log "docker buildx is not installed: compose builds with its own builder and warns that it" \
        "\"is configured to build using Bake\" (harmless; install the buildx plugin to use BuildKit)"
}

cmd_up() {
    load_env
    check_settings
    [[ -n "$CERT_RESOLVER" ]] || local_certs
    log "building and starting (waiting up to ${WAIT_TIMEOUT}s for every service to be healthy)"
    explain_builder
    if ! "${COMPOSE[@]}" up --detach --build --wait --wait-timeout "$WAIT_TIMEOUT" --remove-orphans; then
        "${COMPOSE[@]}" ps --all >&2 || true
        "${COMPOSE[@]}" logs --tail=40 >&2 || true
        # The one-shot migrate service says why it stopped in its last line (a
        # refused database login, say): repeat it where it cannot be missed.
        local migrate_exit
        migrate_exit="$("${COMPOSE[@]}" ps --all --format '{{.Service}} {{.ExitCode}}' migrate 2>/dev/null | awk '{print $2}')"
        if [[ -n "$migrate_exit" && "$migrate_exit" != 0 ]]; then
            die "migrations did not run: $("${COMPOSE[@]}" logs --no-log-prefix --tail=1 migrate 2>/dev/null)"
        fi
        die "the stack did not become healthy (see above; make logs for more)"
    fi
    wait_for_https
    "${COMPOSE[@]}" ps
    log "ready: $(public_url)/docs"
    [[ -n "$CERT_RESOLVER" ]] || print_trust_hint
}

# --- Deploying a new release without dropping a request (`make deploy`) ---------
# Nothing serving yet: `up`, as above. Otherwise the app's containers are
# replaced, never recreated in place (which fails the requests in flight and the
# ones sent before the new container is healthy): build and tag the release,
# migrate (the running release keeps serving on the migrated schema, so a
# migration must stay compatible with it), start as many new containers beside
# the old ones, wait until Docker reports them healthy and Traefik sends them
# requests, then stop the old ones one at a time (SIGTERM: each leaves Traefik's
# rotation, then drains; gunicorn.conf.py). A release that is not healthy within
# WAIT_TIMEOUT is removed again and the old containers serve on.

# Traefik's docker provider applies a container's exit within 2 s: a replica
# stopped before that can be put back in rotation while it drains (docs/operations.md,
# "What the stack guarantees").
PROVIDER_SETTLE_SECONDS=3

# name:tag (or name@digest) -> name: a registry's port is not a tag.
image_repository() {
    local ref="${1%%@*}"
    [[ "${ref##*/}" != *:* ]] || ref="${ref%:*}"
    printf '%s\n' "$ref"
}

# Reads `docker compose config --format json` (stdin), prints the app's image.
app_image_of_config() {
    "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["services"]["app"]["image"])'
}

# The traefik.* labels, sorted: from compose's config of the app (stdin) or, with
# `container`, from `docker inspect` of a container (stdin).
traefik_labels() {
    "${PYTHON:-python3}" -c '
import json, sys
data = json.load(sys.stdin)
labels = data[0]["Config"]["Labels"] if sys.argv[1:] == ["container"] else data["services"]["app"]["labels"]
print(json.dumps({k: v for k, v in sorted(labels.items()) if k.startswith("traefik.")}))
' "$@"
}

# Until every container is healthy. Prints why and fails as soon as one exits,
# restarts or turns unhealthy, or when WAIT_TIMEOUT has passed.
wait_healthy() {
    local deadline=$((SECONDS + WAIT_TIMEOUT)) id status restarts health waiting=()
    while :; do
        waiting=()
        for id in "$@"; do
            read -r status restarts health < <(docker inspect --format \
                '{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
            if ((restarts > 0)) || [[ "$status" == exited || "$status" == dead ]]; then
                printf 'container %s exited at start (%s restart(s)); its last lines: %s\n' \
                    "${id:0:12}" "$restarts" "$(docker logs --tail 3 "$id" 2>&1 | tr '\n' ' ')"
                return 1
            elif [[ "${health:-}" == unhealthy ]]; then
                printf 'container %s is unhealthy (its healthcheck fails); its last lines: %s\n' \
                    "${id:0:12}" "$(docker logs --tail 3 "$id" 2>&1 | tr '\n' ' ')"
                return 1
            elif [[ "$status" != running || "${health:-healthy}" != healthy ]]; then
                waiting+=("${id:0:12}")
            fi
        done
        ((${#waiting[@]})) || return 0
        if ((SECONDS >= deadline)); then
            printf 'container(s) %s not healthy within %ss (WAIT_TIMEOUT)\n' "${waiting[*]}" "$WAIT_TIMEOUT"
            return 1
        fi
        sleep 1
    done
}

# Until Traefik sends requests to every one of these containers: its own view
# (Docker's health, then its health check of the drain probe), read in its
# access log, where each request names the backend that answered it.
wait_routed() {
    local deadline=$((SECONDS + WAIT_TIMEOUT)) traefik probe since seen id address missing i
    traefik="$("${COMPOSE[@]}" ps --quiet traefik | head -n 1)"
    probe="deploy-$(date +%s)-$RANDOM"
    since=$(($(date +%s) - 1))
    while :; do
        for ((i = 0; i < 3 * $#; i++)); do
            "${CHECK_CURL[@]}" --output /dev/null "${CHECK_ORIGIN}/api/health/ready?probe=$probe" 2>/dev/null || true
        done
        seen="$(docker logs --since "$since" "$traefik" 2>&1 | grep -F "$probe" | grep -oE '"ServiceAddr": ?"[^"]*"' || true)"
        missing=()
        for id in "$@"; do
            for address in $(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$id"); do
                [[ "$seen" != *"\"$address:"* ]] || continue 2
            done
            missing+=("${id:0:12}")
        done
        ((${#missing[@]})) || return 0
        if ((SECONDS >= deadline)); then
            printf 'Traefik sent no request to %s within %ss (WAIT_TIMEOUT)\n' "${missing[*]}" "$WAIT_TIMEOUT"
            return 1
        fi
        sleep 1
    done
}

# Stop (SIGTERM: out of Traefik's rotation, then drained) and remove, one at a time.
retire() {
    local id first=1
    for id in "$@"; do
        ((first)) || sleep "$PROVIDER_SETTLE_SECONDS"
        first=0
        docker stop "$id" >/dev/null # returns once it exited (stop_grace_period at most)
        docker rm "$id" >/dev/null
        log "  stopped and removed ${id:0:12}"
    done
}

# The database connections one app container may open: WEB_CONCURRENCY x
# (DB_POOL_SIZE + DB_MAX_OVERFLOW + DB_READ_POOL_SIZE); the defaults are the declared
# ones (app/settings/; tests/config/test_settings_declaration.py holds them). A pool
# keeps what a burst opened, so every deploy that runs
# old and new containers together counts them all (scripts/swarm.sh too).
connections_per_container() {
    echo $((${WEB_CONCURRENCY:-2} * (${DB_POOL_SIZE:-10} + ${DB_MAX_OVERFLOW:-0} + ${DB_READ_POOL_SIZE:-10})))
}

# How many new containers may run beside the `running` ones (at most as many): a
# surge past Postgres' max_connections (less 3 for migrations and psql) would fail
# requests with "too many clients".
surge_capacity() {
    local running="$1" per_container max_connections fit
    per_container="$(connections_per_container)"
    max_connections="$("${COMPOSE[@]}" exec -T db \
        psql -U "${POSTGRES_USER:-app}" -d "${POSTGRES_DB:-app}" -Atc 'SHOW max_connections' || true)"
    if [[ ! "$max_connections" =~ ^[0-9]+$ ]]; then
        log "warning: could not read Postgres' max_connections, assuming its default (100)" >&2
        max_connections=100
    fi
    fit=$(((max_connections - 3) / per_container - running))
    ((fit < running)) || fit=$running
    printf '%s %s %s\n' "$fit" "$per_container" "$max_connections"
}

cmd_deploy() {
    load_env
    if ! stack_running app || ! stack_running traefik; then
        log "no release serving: starting the whole stack"
        cmd_up
        return
    fi
    check_settings
    [[ -n "$CERT_RESOLVER" ]] || local_certs
    https_check_setup
    local started=$SECONDS config image previous release old=() new=() services=() reason migrate status
    local surge per_container max_connections count retired=0 running=()
    config="$("${COMPOSE[@]}" config --format json app)"
    image="$(app_image_of_config <<<"$config")"
    mapfile -t old < <("${COMPOSE[@]}" ps --all --quiet app)
    previous="$(docker inspect --format '{{.Image}}' "${old[0]}")"
    if [[ "$(traefik_labels <<<"$config")" != "$(docker inspect "${old[0]}" | traefik_labels container)" ]]; then
        # Two containers of one Traefik service with different routers conflict,
        # and Traefik then drops the router: nothing would be served meanwhile.
        log "the app's Traefik labels change (DOMAIN, CERT_RESOLVER...): recreating, with a short interruption"
        cmd_up
        return
    fi
    read -r surge per_container max_connections < <(surge_capacity "${#old[@]}")
    if ((surge < 1)); then
        die "a new container beside the ${#old[@]} running needs $(((${#old[@]} + 1) * per_container)) database connections (each may open $per_container), Postgres allows $max_connections: lower WEB_CONCURRENCY or the DB pools, or raise max_connections, or deploy with a short interruption (make up). Nothing was changed"
    fi

    log "building $image (revision $APP_REVISION)"
    explain_builder
    "${COMPOSE[@]}" build app
    release="$(docker image inspect --format '{{.Id}}' "$image")"
    docker tag "$release" "$(image_repository "$image"):${release:7:12}"
    log "release $(image_repository "$image"):${release:7:12}; running: ${previous:7:12}"

    # The other services change only when their settings do (then they are
    # recreated: compose cannot replace Traefik or Postgres without a pause).
    mapfile -t services < <("${COMPOSE[@]}" config --services | grep -vxE 'app|migrate')
    if ! "${COMPOSE[@]}" up --detach --wait --wait-timeout "$WAIT_TIMEOUT" --no-deps --remove-orphans "${services[@]}"; then
        docker tag "$previous" "$image"
        die "${services[*]} did not become healthy (see above); the app was not changed"
    fi

    log "migrating with the new release (the running one keeps serving)"
    "${COMPOSE[@]}" up --detach --no-deps migrate
    migrate="$("${COMPOSE[@]}" ps --all --quiet migrate)"
    status="$(docker wait "$migrate")"
    if [[ "$status" != 0 ]]; then
        docker tag "$previous" "$image"
        die "migrations did not run, the running release serves on: $(docker logs --tail 1 "$migrate" 2>&1)"
    fi

    # In batches of `surge` (all at once when the database can hold twice the
    # containers): start new ones, wait until they serve, retire as many old ones.
    while ((retired < ${#old[@]})); do
        count=$((${#old[@]} - retired < surge ? ${#old[@]} - retired : surge))
        mapfile -t running < <("${COMPOSE[@]}" ps --all --quiet app)
        log "starting $count new app container(s) beside the ${#running[@]} running"
        "${COMPOSE[@]}" up --detach --no-deps --no-recreate --scale "app=$((${#running[@]} + count))" app || true
        mapfile -t new < <(comm -13 <(printf '%s\n' "${running[@]}" | sort) \
            <("${COMPOSE[@]}" ps --all --quiet app | sort))
        # Empty once every new container is healthy and routed to, else why not.
        reason=""
        if ((${#new[@]} != count)); then
            reason="compose started ${#new[@]} new container(s), not $count (see above)"
        elif ! reason="$(wait_healthy "${new[@]}")" || ! reason="$(wait_routed "${new[@]}")"; then
            reason="${reason:-the new containers could not be inspected}"
        fi
        if [[ -n "$reason" ]]; then
            log "the new release failed: $reason"
            log "removing its container(s) that failed"
            retire "${new[@]}"
            if ((retired == 0)); then
                docker tag "$previous" "$image"
                die "deploy failed, release ${release:7:12} removed, ${previous:7:12} still serving: $reason"
            fi
            die "deploy stopped half-way: $retired new and $((${#old[@]} - retired)) old container(s) serve; make deploy again: $reason"
        fi
        log "Traefik routes to the new container(s) after $((SECONDS - started))s: retiring as many old ones"
        retire "${old[@]:retired:count}"
        retired=$((retired + count))
    done
    wait_for_https
    "${COMPOSE[@]}" ps app
    log "deployed ${release:7:12} on ${#old[@]} container(s) in $((SECONDS - started))s, no request dropped"
}

# Migrations and the superuser both come from `python -m app.prestart`, which
# is idempotent; in the stack that is the one-shot `migrate` service.
cmd_prestart() {
    load_env
    if stack_running db; then
        "${COMPOSE[@]}" run --rm --no-deps migrate
    else
        log "the stack's database is not running: using POSTGRES_URL=${POSTGRES_URL:-localhost:5432} from $ENV_FILE"
        .venv/bin/python -m app.prestart
    fi
}

cmd_backup() {
    load_env
    stack_running db || die "the db service is not running (make up)"
    local dir="${BACKUP_DIR:-backups}" file
    # A dump holds password hashes: readable by its owner only, like .env.
    if [[ ! -d "$dir" ]]; then
        mkdir -p "$dir"
        chmod 700 "$dir"
    fi
    umask 077
    file="$dir/$(date -u +%Y%m%dT%H%M%SZ).dump"
    # Custom format: compressed, and pg_restore can pick or reorder objects.
    # PGPASSWORD goes through the environment, never the command line.
    PGPASSWORD="$POSTGRES_PW" "${COMPOSE[@]}" exec -T -e PGPASSWORD db \
        pg_dump --format=custom --no-owner -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" >"$file.partial"
    mv "$file.partial" "$file"
    log "wrote $file ($(du -h "$file" | cut -f1))"
}

cmd_restore() {
    local file="${1:-}"
    [[ -n "$file" && -f "$file" ]] || die "usage: make restore FILE=backups/<file>.dump"
    load_env
    stack_running db || die "the db service is not running (make up)"
    # One transaction: requests keep being served, and see either the old
    # database or the restored one, never a mix; a failed restore changes nothing.
    log "restoring $file into $POSTGRES_DB"
    PGPASSWORD="$POSTGRES_PW" "${COMPOSE[@]}" exec -T -e PGPASSWORD db \
        pg_restore --clean --if-exists --no-owner --single-transaction \
        -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <"$file"
    log "restored"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        up) cmd_up ;;
        deploy) cmd_deploy ;;
        migrate | superuser) cmd_prestart ;;
        backup) cmd_backup ;;
        restore) cmd_restore "$@" ;;
        local-certs) load_env; local_certs; print_trust_hint ;;
        trust-ca) cmd_trust_ca "$@" ;;
        *) die "usage: $0 up|deploy|migrate|superuser|backup|restore FILE|local-certs|trust-ca [FILE]" ;;
    esac
}

# scripts/swarm.sh sources this file for its helpers.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
