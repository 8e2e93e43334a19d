#!/usr/bin/env bash
# Entrypoint of the postgres stand-in image: a small re-implementation of the
# official image's behaviour that the project relies on:
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
#     POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256),
#     and the *_FILE variants of the first three;
#   - initdb only when $PGDATA has no PG_VERSION (so restarts keep the data);
#   - "host all all all scram-sha-256" for network clients;
#   - /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz on first start;
#   - runs postgres as the unprivileged postgres user, as PID 1 (exec), so
#     docker stop's SIGINT/SIGTERM reach it directly (fast/smart shutdown).
# The password is never interpolated into a shell or SQL string: initdb reads
# it from a file descriptor (--pwfile), so any character is fine.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%F %T UTC')" "$*"; }

# file_env VAR [DEFAULT]: VAR from $VAR, or the contents of $VAR_FILE.
file_env() {
    local var="$1" def="${2:-}" file_var="${1}_FILE" val
    if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
        log "error: both $var and $file_var are set (but are exclusive)" >&2
        exit 1
    fi
    val="$def"
    if [[ -n "${!var:-}" ]]; then
        val="${!var}"
    elif [[ -n "${!file_var:-}" ]]; then
        val="$(<"${!file_var}")"
    fi
    export "$var"="$val"
    unset "$file_var"
}

# The official 18+ image refuses to start when data sits in the pre-18 location
# (a mount at /var/lib/postgresql/data): mimic that, so a compose file that
# would break on the real image breaks here too.
check_old_data_location() {
    local old=/var/lib/postgresql/data
    if [[ "$PGDATA" != "$old" && ! -s "$PGDATA/PG_VERSION" ]] \
        && { mountpoint -q "$old" 2>/dev/null || [[ -s "$old/PG_VERSION" ]]; }; then
        cat >&2 <<EOM
Error: in 18+, this image (like the official one) keeps its data in the
       major-version-specific directory PGDATA=$PGDATA, and its VOLUME is
       /var/lib/postgresql. There is a mount or data at $old,
       which would be ignored. Mount the volume at /var/lib/postgresql instead
       (or set PGDATA explicitly).
EOM
        exit 1
    fi
}

# Running as root: prepare the directories, then re-exec as postgres.
prepare_as_root() {
    check_old_data_location
    mkdir -p "$PGDATA"
    chown -R postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    mkdir -p /var/run/postgresql
    chown -R postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
}

verify_env() {
    if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
       (or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a
       password; not recommended)
EOM
        exit 1
    fi
}

# Sourced (not executed) like the official image does for non-executable *.sh.
source_init() {
    # shellcheck disable=SC1090  # init scripts are the user's, unknown here
    . "$1"
}

init_database() {
    local -a initdb_args=()
    log "initialising $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
    # Word-splitting of POSTGRES_INITDB_ARGS is intended (it is a list of flags).
    read -r -a initdb_args <<<"${POSTGRES_INITDB_ARGS:-}"
    if [[ -n "$POSTGRES_PASSWORD" ]]; then
        initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${initdb_args[@]}"
    else
        initdb --username="$POSTGRES_USER" "${initdb_args[@]}"
    fi
    # Local socket and loopback stay "trust" (initdb's default, as in the
    # official image); everything else needs the password.
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
    # The wheel's compiled-in socket dir is /tmp (its psql/pg_isready default
    # to it); also offer the official image's /var/run/postgresql. (initdb
    # rewrites this setting in the sample, hence here and not in the Dockerfile.)
    printf "\nunix_socket_directories = '/var/run/postgresql,/tmp'\n" >>"$PGDATA/postgresql.conf"

    # Temporary server on the socket only, to create the database and run init scripts.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    local -a psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [[ "$POSTGRES_DB" != postgres ]]; then
        # :"db" makes psql quote the name as an identifier.
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) log "running $f"; if [[ -x "$f" ]]; then "$f"; else source_init "$f"; fi ;;
            *.sql) log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) [[ -e "$f" ]] && log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    log "PostgreSQL init process complete; ready for start up."
}

main() {
    # `docker run image -c foo=bar` means `postgres -c foo=bar`.
    if [[ "${1:-}" == -* ]]; then
        set -- postgres "$@"
    fi
    if [[ "${1:-}" != postgres ]]; then
        exec "$@"
    fi
    if [[ "$(id -u)" == 0 ]]; then
        prepare_as_root "$@"
    fi
    file_env POSTGRES_USER postgres
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_DB "$POSTGRES_USER"
    export POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA" 2>/dev/null || true
    if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
        verify_env
        init_database
    else
        log "PostgreSQL database directory appears to contain a database; skipping initialization"
    fi
    unset POSTGRES_PASSWORD
    exec "$@"
}

main "$@"
