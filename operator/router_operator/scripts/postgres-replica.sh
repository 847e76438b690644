#!/bin/sh
# A PostgreSQL streaming replica: clone the primary once with pg_basebackup -R, then run in the
# foreground as a hot standby. Env: PGDATA, PGPORT, PRIMARY_HOST, PRIMARY_PORT, REPLICATION_PASSWORD.
set -eu
: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${REPLICATION_PASSWORD:?}"
PGPORT=${PGPORT:-5432}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
# shellcheck disable=SC2012 # plain version-number names; sort -V picks the newest major
command -v pg_basebackup >/dev/null 2>&1 || PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1):$PATH"
export PATH PGPORT

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
    echo "waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
    sleep 2
  done
  rm -rf "${PGDATA:?}"/*
  PGPASSWORD=$REPLICATION_PASSWORD pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U replicator \
    -D "$PGDATA" -R -X stream -c fast
  chmod 700 "$PGDATA"
fi
exec postgres -D "$PGDATA" -c port="$PGPORT" -c unix_socket_directories="$PGDATA"
