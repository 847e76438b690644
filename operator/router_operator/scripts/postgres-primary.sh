#!/bin/sh
# The PostgreSQL primary: initialise the data directory once (roles, database, replication access),
# then run the server in the foreground. Env: PGDATA, PGPORT, SUPERUSER_PASSWORD, DATABASE_USER,
# DATABASE_NAME, DATABASE_PASSWORD, REPLICATION_PASSWORD; LISTEN_ADDRESSES (default *).
set -eu
: "${PGDATA:?}" "${SUPERUSER_PASSWORD:?}" "${DATABASE_USER:?}" "${DATABASE_NAME:?}" "${DATABASE_PASSWORD:?}" \
  "${REPLICATION_PASSWORD:?}"
PGPORT=${PGPORT:-5432}
# Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
# shellcheck disable=SC2012 # plain version-number names; sort -V picks the newest major
command -v initdb >/dev/null 2>&1 || PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1):$PATH"
export PATH PGPORT

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$SUPERUSER_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >>"$PGDATA/pg_hba.conf" <<HBA
host all all all scram-sha-256
host replication replicator all scram-sha-256
HBA
  cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '${LISTEN_ADDRESSES:-*}'
wal_level = replica
max_wal_senders = 10
wal_keep_size = '256MB'
hot_standby = on
unix_socket_directories = '$PGDATA'
CONF
  # Local socket only while roles are created: nobody else can connect yet.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  psql -v ON_ERROR_STOP=1 -h "$PGDATA" -U postgres -d postgres \
    -v user="$DATABASE_USER" -v db="$DATABASE_NAME" -v pw="$DATABASE_PASSWORD" -v rpw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'rpw';
SQL
  pg_ctl -D "$PGDATA" -w stop >/dev/null
fi
exec postgres -D "$PGDATA"
