#!/usr/bin/env bash
# A throwaway PostgreSQL primary with two streaming read replicas on loopback, for integration tests.
#
# Usage: scripts/postgres-replicas.sh [--dir DIR] start|stop|destroy|status|wait [--timeout S]|stop-node NAME|start-node NAME
#   NAME is primary, replica1 or replica2.
#   start       create the stack (or restart the nodes of an existing one) and wait until replicating
#   stop        stop every node (pg_ctl stop -m fast) and wait; data is kept for the next start
#   destroy     stop, then delete DIR
#   status      print node states; exit 0 only when the primary takes writes and both replicas stream
#   wait        wait until healthy (default timeout QR_PG_START_TIMEOUT=120 s)
#   stop-node / start-node   stop or start one node (fault tests)
#
# State lives in --dir DIR, $QR_PG_DIR or ${TMPDIR:-/tmp}/quantum-router-pg (mode 0700; destroy refuses
# a dir this script did not create). DIR/env (mode 0600) holds
# QR_DATABASE_URL, QR_DATABASE_REPLICA_URLS (a JSON list, single-quoted for shells and dotenv) and
# the raw ports. Authentication: scram-sha-256 passwords on 127.0.0.1 only, no Unix sockets. The
# role quantum_router (owner of database quantum_router) gets a random password, written into the
# URLs in DIR/env; the superuser and replication passwords are in DIR/secrets (mode 0600).
# PostgreSQL refuses to run as root, so as root the servers run as the "postgres" system user.
set -euo pipefail

readonly NODES=(primary replica1 replica2)
readonly DB_NAME=quantum_router
readonly DB_USER=quantum_router

STATE_DIR="${QR_PG_DIR:-${TMPDIR:-/tmp}/quantum-router-pg}"
START_TIMEOUT="${QR_PG_START_TIMEOUT:-120}"
PG_USER=""
BINDIR=""

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

SCRIPT_NAME=postgres-replicas
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

find_bindir() {
    local d
    if command -v pg_config >/dev/null; then
        # pg_config may come from libpq-dev alone, without a server next to it.
        d=$(pg_config --bindir 2>/dev/null || true)
        [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    fi
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    done
    return 1
}

ensure_postgres() {
    if BINDIR=$(find_bindir); then return; fi
    apt_install postgresql
    BINDIR=$(find_bindir) || die "initdb still missing after apt-get install postgresql"
}

# The servers must not run as root; the package creates "postgres", a bare machine may lack it.
ensure_pg_user() {
    if [[ $(id -u) -ne 0 ]]; then
        PG_USER=$(id -un)
        return
    fi
    PG_USER=postgres
    id "$PG_USER" >/dev/null 2>&1 && return
    log "creating system user $PG_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
}

# Runs in the state dir: as another user, root's cwd (often under /root) would be unreadable.
# 9>&- : a postmaster started through here must not inherit (and hold forever) the state-dir lock.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd "$STATE_DIR" && runuser -u "$PG_USER" -- "$@" 9>&-)
    else
        (cd "$STATE_DIR" && "$@" 9>&-)
    fi
}

prepare_state_dir() {
    make_state_dir
    mkdir -p "$STATE_DIR/logs"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$PG_USER:" "$STATE_DIR" "$STATE_DIR/logs"
        as_pg test -w "$STATE_DIR" 2>/dev/null \
            || die "user $PG_USER cannot reach $STATE_DIR (a parent directory is private?); use a dir under /tmp"
    fi
}

# Below the kernel's ephemeral range (32768+), so client sockets cannot take a port before we bind it.
pick_ports() {
    local picked=() port tries=0
    while ((${#picked[@]} < ${#NODES[@]})); do
        ((tries++ < 2000)) || die "no free ports found"
        port=$((23000 + RANDOM % 6000))
        [[ " ${picked[*]} " == *" $port "* ]] && continue
        port_free "$port" || continue
        picked+=("$port")
    done
    echo "${picked[@]}"
}

random_secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

data_dir() { echo "$STATE_DIR/$1"; }

node_index() {
    local i
    for i in "${!NODES[@]}"; do [[ ${NODES[$i]} == "$1" ]] && { echo "$i"; return 0; }; done
    die "node must be one of ${NODES[*]}, got '$1'"
}

node_port() { echo "${PORTS[$(node_index "$1")]}"; }

load_state() {
    [[ -f $STATE_DIR/created && -f $STATE_DIR/secrets ]] || return 1
    # shellcheck source=/dev/null
    source "$STATE_DIR/secrets"
    read -r -a PORTS <"$STATE_DIR/ports"
}

# Settings shared by all nodes (pg_basebackup copies them); the port is per node in qr-node.conf.
write_primary_config() {
    local dir=$1 port=$2
    as_pg tee -a "$dir/postgresql.conf" >/dev/null <<'EOF'

# --- quantum-router test stack ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
# Test speed only: no fsync, but commits stay synchronous (fault tests rely on committed = durable
# across a clean crash of the server process, which survives without fsync on a live OS).
fsync = off
full_page_writes = off
synchronous_commit = on
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = '1s'
# Replicas reconnect within about a second after the primary restarts.
wal_retrieve_retry_interval = '1s'
shared_buffers = '32MB'
max_connections = 50
include_if_exists = 'qr-node.conf'
EOF
    write_node_port "$dir" "$port"
    as_pg tee "$dir/pg_hba.conf" >/dev/null <<EOF
host all all 127.0.0.1/32 scram-sha-256
host replication replicator 127.0.0.1/32 scram-sha-256
EOF
}

write_node_port() { echo "port = $2" | as_pg tee "$1/qr-node.conf" >/dev/null; }

pg_running() { as_pg "$BINDIR/pg_ctl" -D "$(data_dir "$1")" status >/dev/null 2>&1; }

start_node() {
    local name=$1
    pg_running "$name" && return 0
    port_free "$(node_port "$name")" || die "port $(node_port "$name") of $name is taken by another process"
    as_pg "$BINDIR/pg_ctl" -D "$(data_dir "$name")" -l "$STATE_DIR/logs/$name.log" -w -t 60 start >/dev/null \
        || { tail -n 20 "$STATE_DIR/logs/$name.log" >&2; die "$name did not start"; }
}

stop_node() {
    local name=$1
    [[ -d $(data_dir "$name") ]] || return 0
    pg_running "$name" || return 0
    if ! as_pg "$BINDIR/pg_ctl" -D "$(data_dir "$name")" -m fast -w -t 60 stop >/dev/null; then
        log "$name did not stop within 60 s; using immediate mode"
        as_pg "$BINDIR/pg_ctl" -D "$(data_dir "$name")" -m immediate -w -t 30 stop >/dev/null
    fi
}

# psql over TCP as superuser; bounded so a hung server cannot hang the script.
sql() {
    local port=$1 db=$2
    shift 2
    PGPASSWORD=$SU_PASSWORD PGCONNECT_TIMEOUT=3 timeout 15 "$BINDIR/psql" -h 127.0.0.1 -p "$port" \
        -U postgres -d "$db" -XAtq -v ON_ERROR_STOP=1 "$@"
}

create_roles() {
    local port=$1
    sql "$port" postgres <<EOF >/dev/null
CREATE ROLE replicator WITH LOGIN REPLICATION PASSWORD '$REPL_PASSWORD';
CREATE ROLE $DB_USER WITH LOGIN PASSWORD '$APP_PASSWORD';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
EOF
}

init_primary() {
    local dir pwfile
    dir=$(data_dir primary)
    pwfile="$STATE_DIR/.initdb-pw"
    echo "$SU_PASSWORD" | as_pg tee "$pwfile" >/dev/null
    as_pg chmod 600 "$pwfile"
    as_pg "$BINDIR/initdb" -D "$dir" -U postgres --pwfile="$pwfile" -A scram-sha-256 \
        --no-locale -E UTF8 --no-sync --no-instructions >"$STATE_DIR/logs/initdb.log" 2>&1 \
        || { cat "$STATE_DIR/logs/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    write_primary_config "$dir" "${PORTS[0]}"
}

# -R writes standby.signal and primary_conninfo; -C -S a physical slot keeps WAL for a stopped replica.
clone_replica() {
    local name=$1 port=$2 dir
    dir=$(data_dir "$name")
    as_pg env PGPASSWORD="$REPL_PASSWORD" timeout 120 "$BINDIR/pg_basebackup" \
        -h 127.0.0.1 -p "${PORTS[0]}" -U replicator -D "$dir" -R -C -S "$name" -X stream --checkpoint=fast --no-sync \
        >"$STATE_DIR/logs/basebackup-$name.log" 2>&1 \
        || { cat "$STATE_DIR/logs/basebackup-$name.log" >&2; die "pg_basebackup for $name failed"; }
    write_node_port "$dir" "$port"
}

write_env() {
    local base="postgresql+asyncpg://$DB_USER:$APP_PASSWORD@127.0.0.1"
    (umask 077 && cat >"$STATE_DIR/env.tmp") <<EOF
QR_DATABASE_URL=$base:${PORTS[0]}/$DB_NAME
QR_DATABASE_REPLICA_URLS='["$base:${PORTS[1]}/$DB_NAME","$base:${PORTS[2]}/$DB_NAME"]'
QR_PG_PRIMARY_PORT=${PORTS[0]}
QR_PG_REPLICA1_PORT=${PORTS[1]}
QR_PG_REPLICA2_PORT=${PORTS[2]}
QR_PG_BINDIR=$BINDIR
EOF
    mv "$STATE_DIR/env.tmp" "$STATE_DIR/env"
}

create_stack() {
    rm -rf "${STATE_DIR:?}"/primary "$STATE_DIR"/replica? "$STATE_DIR/env" "$STATE_DIR/secrets"
    read -r -a PORTS <<<"$(pick_ports)"
    SU_PASSWORD=$(random_secret)
    REPL_PASSWORD=$(random_secret)
    APP_PASSWORD=$(random_secret)
    (umask 077 && printf 'SU_PASSWORD=%s\nREPL_PASSWORD=%s\nAPP_PASSWORD=%s\n' \
        "$SU_PASSWORD" "$REPL_PASSWORD" "$APP_PASSWORD" >"$STATE_DIR/secrets")
    echo "${PORTS[*]}" >"$STATE_DIR/ports"
    init_primary
    start_node primary
    create_roles "${PORTS[0]}"
    clone_replica replica1 "${PORTS[1]}"
    clone_replica replica2 "${PORTS[2]}"
    start_node replica1
    start_node replica2
    write_env
    touch "$STATE_DIR/created"
}

primary_healthy() {
    local port=${PORTS[0]} out
    out=$(sql "$port" postgres -c "SELECT pg_is_in_recovery()" 2>/dev/null) || return 1
    [[ $out == f ]] || return 1
    # A real write proves the primary is not read-only.
    sql "$port" postgres -c "CREATE TABLE IF NOT EXISTS qr_healthcheck (id int PRIMARY KEY, at timestamptz);
        INSERT INTO qr_healthcheck VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()" \
        >/dev/null 2>&1 || return 1
    out=$(sql "$port" postgres -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" \
        2>/dev/null) || return 1
    [[ $out == "$((${#NODES[@]} - 1))" ]]
}

replica_healthy() {
    local port=$1 out
    out=$(sql "$port" postgres -c "SELECT pg_is_in_recovery() || ':' || coalesce(
        (SELECT status FROM pg_stat_wal_receiver), 'none')" 2>/dev/null) || return 1
    [[ $out == "true:streaming" ]]
}

stack_healthy() {
    primary_healthy || return 1
    replica_healthy "${PORTS[1]}" && replica_healthy "${PORTS[2]}"
}

wait_healthy() {
    local timeout=$1
    local deadline=$((SECONDS + timeout))
    until stack_healthy; do
        if ((SECONDS >= deadline)); then
            log "stack not healthy after ${timeout} s"
            print_status >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

print_status() {
    local name port state
    for name in "${NODES[@]}"; do
        port=$(node_port "$name")
        if ! pg_running "$name"; then
            state=down
        elif [[ $name == primary ]]; then
            state="up streaming_replicas=$(sql "$port" postgres -c \
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo '?')"
        else
            state="up receiver=$(sql "$port" postgres -c \
                "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')" 2>/dev/null || echo '?')"
        fi
        printf '%s 127.0.0.1:%s %s\n' "$name" "$port" "$state"
    done
}

cmd_start() {
    ensure_postgres
    ensure_pg_user
    prepare_state_dir
    local begin=$SECONDS name
    if load_state; then
        for name in "${NODES[@]}"; do start_node "$name"; done
    else
        create_stack
    fi
    wait_healthy "$START_TIMEOUT"
    log "primary and replicas healthy after $((SECONDS - begin)) s; env in $STATE_DIR/env"
    cat "$STATE_DIR/env"
}

with_state() {
    BINDIR=$(find_bindir) || die "PostgreSQL binaries not found"
    ensure_pg_user
    load_state || die "no stack in $STATE_DIR"
}

cmd_stop() {
    with_state
    local name
    # Replicas first, so the primary's fast shutdown has no walsenders to drain.
    for name in replica2 replica1 primary; do stop_node "$name"; done
    log "all nodes stopped"
}

cmd_destroy() {
    if BINDIR=$(find_bindir) && ensure_pg_user && load_state; then
        local name
        for name in replica2 replica1 primary; do stop_node "$name"; done
    fi
    rm -rf "${STATE_DIR:?}"
    log "removed $STATE_DIR"
}

cmd_status() {
    with_state
    print_status
    if stack_healthy; then echo healthy; else echo unhealthy; return 1; fi
}

main() {
    parse_args "$@"
    lock_state_dir
    case ${ARGS[0]} in
        start) cmd_start ;;
        stop) cmd_stop ;;
        destroy) cmd_destroy; rm -f "$STATE_DIR.lock" ;;
        status) cmd_status ;;
        wait) with_state; wait_healthy "${TIMEOUT:-$START_TIMEOUT}" ;;
        stop-node) with_state; node_index "${ARGS[1]:-}" >/dev/null; stop_node "${ARGS[1]}" ;;
        start-node) with_state; node_index "${ARGS[1]:-}" >/dev/null; start_node "${ARGS[1]}" ;;
        *) usage ;;
    esac
}

main "$@"
