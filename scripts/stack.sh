#!/usr/bin/env bash
# The compose stack's day-to-day tasks, called by the Makefile:
#   scripts/stack.sh up              certificates if local, build, start, wait, print the URL
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
# Compose builds through Bake when buildx is installed, and warns on every build
# when it is not: the classic builder is what this project needs and tests.
export COMPOSE_BAKE="${COMPOSE_BAKE:-false}"
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
}

# Refuse settings that would start a broken or unsafe stack.
check_settings() {
    case "$CERT_RESOLVER" in
        "") ;;
        letsencrypt)
            # Let's Encrypt validates public names only (a private ACME CA may not).
            if [[ "${ACME_CA_SERVER:-api.letsencrypt.org}" == *api.letsencrypt.org* ]]; then
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
    # 397 days: the longest validity browsers accept for a server certificate.
    openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 397 -sha256 -extfile "$ext" -out "$dir/tls.crt" 2>/dev/null
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

# Healthy containers are not enough: wait until a client gets a healthy answer
# through Traefik, over HTTPS with the certificate verified for DOMAIN (a new
# ACME certificate can take a moment). Reaches this machine's published port
# without DNS, unless HEALTH_CHECK_ADDRESS says where DOMAIN lives.
wait_for_https() {
    local port="${HTTPS_PORT:-443}" address url body deadline
    address="${HEALTH_CHECK_ADDRESS:-${BIND_ADDRESS:-127.0.0.1}}"
    [[ "$address" != 0.0.0.0 ]] || address=127.0.0.1
    url="https://${DOMAIN}:${port}/api/health/ready"
    local args=(--silent --show-error --fail --max-time 5 --resolve "${DOMAIN}:${port}:${address}")
    if [[ "${HEALTH_CHECK_INSECURE:-false}" == true ]]; then
        args+=(--insecure)
    elif [[ -n "$CERT_RESOLVER" && "${ACME_CA_SERVER:-}" == *acme-staging* ]]; then
        log "Let's Encrypt staging: its certificates are untrusted by design, not verifying"
        args+=(--insecure)
    elif [[ -n "${HEALTH_CHECK_CA_FILE:-}" ]]; then
        args+=(--cacert "$HEALTH_CHECK_CA_FILE")
    elif [[ -z "$CERT_RESOLVER" ]]; then
        args+=(--cacert "$LOCAL_CERTS_DIR/ca.crt")
    fi
    log "waiting for $url (verified HTTPS through Traefik, up to ${WAIT_TIMEOUT}s)"
    deadline=$((SECONDS + WAIT_TIMEOUT))
    until body="$(curl "${args[@]}" "$url" 2>&1)"; do
        if ((SECONDS >= deadline)); then
            "${COMPOSE[@]}" logs --tail=30 traefik app >&2 || true
            die "$url did not answer healthy over verified HTTPS: $body"
        fi
        sleep 1
    done
}

cmd_up() {
    load_env
    check_settings
    [[ -n "$CERT_RESOLVER" ]] || local_certs
    log "building and starting (waiting up to ${WAIT_TIMEOUT}s for every service to be healthy)"
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
        migrate | superuser) cmd_prestart ;;
        backup) cmd_backup ;;
        restore) cmd_restore "$@" ;;
        local-certs) load_env; local_certs; print_trust_hint ;;
        trust-ca) cmd_trust_ca "$@" ;;
        *) die "usage: $0 up|migrate|superuser|backup|restore FILE|local-certs|trust-ca [FILE]" ;;
    esac
}

main "$@"
