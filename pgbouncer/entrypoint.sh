#!/bin/sh
# Writes PgBouncer's configuration from the environment, then runs it as PID 1
# (the image stops it with SIGINT: its safe shutdown).
#   POSTGRES_HOST, POSTGRES_PORT      where Postgres is (db, 5432)
#   POSTGRES_USER, POSTGRES_DB        the one user and database it pools
#   POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (a Docker secret)
#   PGBOUNCER_POOL_SIZE               server connections to Postgres, at most (20)
#   PGBOUNCER_MAX_CLIENT_CONN         client connections (the app's pools), at most (1000)
# Clients log in with SCRAM, and so does PgBouncer to Postgres: the userlist holds
# the password itself (a SCRAM secret would let clients in, but not PgBouncer into
# Postgres), written at start to a tmpfs readable by this user only.
set -eu

: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${POSTGRES_DB:?POSTGRES_DB is not set}"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        echo "pgbouncer: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both" >&2
        exit 1
    fi
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set}"

run_dir=/run/pgbouncer
umask 077
mkdir -p "$run_dir"

# userlist.txt: "name" "password", a double quote written twice.
quoted() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }
printf '%s %s\n' "$(quoted "$POSTGRES_USER")" "$(quoted "$POSTGRES_PASSWORD")" >"$run_dir/userlist.txt"
unset POSTGRES_PASSWORD

pool_size="${PGBOUNCER_POOL_SIZE:-20}"
cat >"$run_dir/pgbouncer.ini" <<INI
[databases]
${POSTGRES_DB} = host=${POSTGRES_HOST:-db} port=${POSTGRES_PORT:-5432} dbname=${POSTGRES_DB}

[pgbouncer]
listen_addr = *
listen_port = 6432
unix_socket_dir = ${run_dir}
pidfile =
logfile =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = ${run_dir}/userlist.txt
; Postgres sees at most pool_size connections from here, whatever the clients.
default_pool_size = ${pool_size}
max_db_connections = ${pool_size}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-1000}
; A database that is down fails clients within seconds (the app answers 503), as
; it does without the pooler: no long queueing for a server connection.
server_connect_timeout = 3
server_login_retry = 1
query_wait_timeout = 10
; Connections come and go with replicas: keep the log for errors.
log_connections = 0
log_disconnections = 0
INI

exec pgbouncer "$run_dir/pgbouncer.ini"
