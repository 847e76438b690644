#!/usr/bin/env bash
# Start Redis Cluster and PostgreSQL (primary + two replicas) on free loopback ports, then the service
# against them in the foreground. Ctrl-C or SIGTERM stops the service and every server started here.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=$(mktemp -d "${TMPDIR:-/tmp}/quantum-router-stack.XXXXXX")
chmod 755 "$state"  # the postgres user must reach its data directory below
redis_dir=$state/redis
pg_dir=$state/pg
service_pid=""

cleanup() {
    trap - INT TERM EXIT
    if [[ -n $service_pid ]] && kill -0 "$service_pid" 2>/dev/null; then
        kill -TERM "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    echo "stopping Redis Cluster and PostgreSQL..." >&2
    "$repo/scripts/redis-cluster.sh" --dir "$redis_dir" destroy >/dev/null 2>&1 || true
    "$repo/scripts/postgres-replicas.sh" --dir "$pg_dir" destroy >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

"$repo/scripts/redis-cluster.sh" --dir "$redis_dir" start
"$repo/scripts/postgres-replicas.sh" --dir "$pg_dir" start

set -a
# shellcheck disable=SC1091
source "$redis_dir/env"
# shellcheck disable=SC1091
source "$pg_dir/env"
set +a

# Run the service as a child (not exec) so the trap above still owns the servers' lifetime.
"$repo/.venv/bin/quantum-router" serve &
service_pid=$!
wait "$service_pid"
