#!/usr/bin/env bash
# /docker-entrypoint-initdb.d/ script of tests/stack/test_18_external_db.py's
# managed database: TLS with the test's certificate (mounted at /tls), and network
# clients over TLS only (hostssl), as managed services enforce.
set -euo pipefail
install -m 0644 /tls/server.crt "$PGDATA/server.crt"
install -m 0600 /tls/server.key "$PGDATA/server.key"
cat >>"$PGDATA/postgresql.conf" <<'CONF'
listen_addresses = '*'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
cat >"$PGDATA/pg_hba.conf" <<'HBA'
local all all trust
hostssl all all all scram-sha-256
HBA
