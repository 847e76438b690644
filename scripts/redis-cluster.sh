#!/usr/bin/env bash
# A throwaway six-node Redis Cluster (3 masters, 3 replicas) on loopback, for integration tests.
#
# Usage: scripts/redis-cluster.sh [--dir DIR] start|stop|destroy|status|wait [--timeout S]|kill-node N|start-node N
#   N is the 0-based index into QR_REDIS_NODES in DIR/env (the order of the ports picked at creation).
#   start       create the cluster (or restart the nodes of an existing one) and wait until healthy
#   stop        stop every node (SIGTERM, then SIGKILL after a bound) and wait for exit; state is kept
#   destroy     stop, then delete DIR
#   status      print node roles; exit 0 only when every node runs and the cluster is healthy
#   wait        wait until healthy (default timeout QR_REDIS_START_TIMEOUT=90 s)
#   kill-node   SIGKILL one node (a crash, no clean shutdown) and wait for it to exit
#   start-node  start one node again with its previous state (it rejoins the cluster)
#
# State lives in --dir DIR, $QR_REDIS_DIR or ${TMPDIR:-/tmp}/quantum-router-redis (mode 0700; destroy
# refuses a dir this script did not create). DIR/env (mode 0600) holds QR_REDIS_URL (one seed node, with
# the password), QR_REDIS_CLUSTER=true and QR_REDIS_NODES (host:port list). Every node requires the random
# password in DIR/secrets (requirepass, and masterauth for replication).
set -euo pipefail

readonly NODE_COUNT=6
# Short so that failover in fault tests happens within a few seconds, not the default 15 s.
readonly NODE_TIMEOUT_MS=2000

STATE_DIR="${QR_REDIS_DIR:-${TMPDIR:-/tmp}/quantum-router-redis}"
START_TIMEOUT="${QR_REDIS_START_TIMEOUT:-90}"

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

SCRIPT_NAME=redis-cluster
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ensure_redis() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return
    fi
    apt_install redis-server redis-tools
    command -v redis-server >/dev/null || die "redis-server still missing after apt-get install"
}

# Client ports come from a range whose bus ports (port+10000) stay below the kernel's ephemeral
# range, so outgoing connections of other programs cannot grab a bus port between pick and bind.
pick_ports() {
    local low _high lo hi port picked=()
    read -r low _high </proc/sys/net/ipv4/ip_local_port_range
    lo=20000
    hi=$((low - 10000 - 1))
    ((hi - lo > 100)) || hi=29999
    local tries=0
    while ((${#picked[@]} < NODE_COUNT)); do
        ((tries++ < 2000)) || die "no free port pairs found in $lo-$hi"
        port=$((lo + RANDOM % (hi - lo + 1)))
        [[ " ${picked[*]} " == *" $port "* ]] && continue
        if ! port_free "$port" || ! port_free $((port + 10000)); then continue; fi
        picked+=("$port")
    done
    echo "${picked[@]}"
}

node_dir() { echo "$STATE_DIR/node-$1"; }
pid_file() { echo "$(node_dir "$1")/redis.pid"; }

random_secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# The cluster's password, created with the cluster; redis-cli reads it from REDISCLI_AUTH (not argv, where
# ps would show it). A cluster created before passwords has no secrets file and needs none.
load_password() {
    REDIS_PASSWORD=""
    if [[ -f $STATE_DIR/secrets ]]; then
        REDIS_PASSWORD=$(sed -n 's/^REDIS_PASSWORD=//p' "$STATE_DIR/secrets")
        export REDISCLI_AUTH=$REDIS_PASSWORD
    fi
}

new_password() {
    REDIS_PASSWORD=$(random_secret)
    (umask 077 && printf 'REDIS_PASSWORD=%s\n' "$REDIS_PASSWORD" >"$STATE_DIR/secrets")
    export REDISCLI_AUTH=$REDIS_PASSWORD
}

write_node_config() {
    local port=$1 dir
    dir=$(node_dir "$port")
    mkdir -p "$dir"
    (umask 077 && cat >"$dir/redis.conf") <<EOF
port $port
requirepass $REDIS_PASSWORD
masterauth $REDIS_PASSWORD
bind 127.0.0.1
protected-mode yes
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout $NODE_TIMEOUT_MS
# Tests kill masters right after writes; a replica must always be allowed to take over.
cluster-replica-validity-factor 0
save ""
appendonly no
repl-diskless-sync yes
repl-diskless-sync-delay 0
EOF
}

load_env() {
    [[ -f $STATE_DIR/env ]] || return 1
    PORTS=()
    local line
    line=$(grep '^QR_REDIS_NODES=' "$STATE_DIR/env") || return 1
    IFS=',' read -r -a nodes <<<"${line#QR_REDIS_NODES=}"
    local n
    for n in "${nodes[@]}"; do PORTS+=("${n##*:}"); done
    ((${#PORTS[@]} == NODE_COUNT))
}

write_env() {
    local nodes=() p
    for p in "${PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
    local joined auth=""
    joined=$(IFS=,; echo "${nodes[*]}")
    [[ -n $REDIS_PASSWORD ]] && auth=":$REDIS_PASSWORD@"
    (umask 077 && cat >"$STATE_DIR/env.tmp") <<EOF
QR_REDIS_URL=redis://${auth}127.0.0.1:${PORTS[0]}
QR_REDIS_CLUSTER=true
QR_REDIS_NODES=$joined
EOF
    mv "$STATE_DIR/env.tmp" "$STATE_DIR/env"
}

# Zombies still answer kill -0; a killed daemon reparented to a slow-reaping init must count as gone.
pid_alive() {
    local state
    state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

node_pid() {
    local f
    f=$(pid_file "$1")
    [[ -f $f ]] || return 1
    local pid
    pid=$(<"$f")
    # A stale pid file may name a recycled pid; only a redis-server counts.
    [[ -n $pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] && pid_alive "$pid" \
        && echo "$pid"
}

cli() {
    local port=$1
    shift
    timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# daemonize forks before binding, so success is only known once the node answers PING.
start_node_port() {
    local port=$1 dir
    dir=$(node_dir "$port")
    if node_pid "$port" >/dev/null; then
        return 0
    fi
    rm -f "$(pid_file "$port")"
    # A fresh log, so the bind-failure check below cannot match an old run's error.
    [[ -f $dir/redis.log ]] && mv "$dir/redis.log" "$dir/redis.log.1"
    # 9>&- : the daemon must not inherit (and so hold forever) the state-dir lock.
    redis-server "$dir/redis.conf" >/dev/null 9>&-
    local deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        [[ $(cli "$port" ping 2>/dev/null) == PONG ]] && return 0
        if grep -q 'Address already in use\|Could not create server TCP' "$dir/redis.log" 2>/dev/null; then
            log "port $port is taken"
            return 1
        fi
        sleep 0.2
    done
    log "node $port did not answer PING within 20 s; see $dir/redis.log"
    return 1
}

stop_node_port() {
    local port=$1 signal=${2:-TERM} pid
    pid=$(node_pid "$port") || { rm -f "$(pid_file "$port")"; return 0; }
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            [[ $signal != KILL ]] || die "node $port (pid $pid) survives SIGKILL"
            log "node $port (pid $pid) ignored SIG$signal; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            signal=KILL
        fi
        sleep 0.1
    done
    rm -f "$(pid_file "$port")"
}

# Healthy: every node runs and agrees the cluster is ok with all slots served, every replica
# has a live link to its master, and there are three masters.
cluster_healthy() {
    local port info masters=0
    for port in "${PORTS[@]}"; do
        node_pid "$port" >/dev/null || return 1
        info=$(cli "$port" cluster info 2>/dev/null | tr -d '\r') || return 1
        grep -q '^cluster_state:ok$' <<<"$info" || return 1
        grep -q '^cluster_slots_ok:16384$' <<<"$info" || return 1
        grep -q "^cluster_known_nodes:$NODE_COUNT\$" <<<"$info" || return 1
        info=$(cli "$port" info replication 2>/dev/null | tr -d '\r') || return 1
        if grep -q '^role:master$' <<<"$info"; then
            masters=$((masters + 1))
        else
            grep -q '^master_link_status:up$' <<<"$info" || return 1
        fi
    done
    ((masters == NODE_COUNT / 2))
}

wait_healthy() {
    local timeout=$1
    local deadline=$((SECONDS + timeout))
    until cluster_healthy; do
        if ((SECONDS >= deadline)); then
            log "cluster not healthy after ${timeout} s"
            print_status >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

create_cluster() {
    local attempt
    new_password
    for attempt in 1 2 3; do
        rm -rf "${STATE_DIR:?}"/node-* "$STATE_DIR/env" "$STATE_DIR/created"
        read -r -a PORTS <<<"$(pick_ports)"
        local port ok=1
        for port in "${PORTS[@]}"; do
            write_node_config "$port"
            start_node_port "$port" || { ok=0; break; }
        done
        if ((ok)); then
            break
        fi
        log "port clash on attempt $attempt; retrying with other ports"
        for port in "${PORTS[@]}"; do stop_node_port "$port"; done
        ((attempt < 3)) || die "could not start $NODE_COUNT nodes"
    done
    local addrs=()
    for port in "${PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes </dev/null \
        >"$STATE_DIR/create.log" 2>&1; then
        cat "$STATE_DIR/create.log" >&2
        # No cluster means no env file, so nothing would ever stop these nodes: stop them now.
        for port in "${PORTS[@]}"; do stop_node_port "$port"; done
        die "redis-cli --cluster create failed; its nodes are stopped"
    fi
    write_env
    touch "$STATE_DIR/created"
}

cmd_start() {
    ensure_redis
    make_state_dir
    local begin=$SECONDS
    if [[ -f $STATE_DIR/created ]] && load_env; then
        load_password
        local port
        for port in "${PORTS[@]}"; do start_node_port "$port" || die "cannot restart node $port"; done
    else
        create_cluster
    fi
    wait_healthy "$START_TIMEOUT"
    log "cluster healthy after $((SECONDS - begin)) s; env in $STATE_DIR/env"
    cat "$STATE_DIR/env"
}

cmd_stop() {
    load_env || { log "no cluster in $STATE_DIR"; return 0; }
    local port
    for port in "${PORTS[@]}"; do stop_node_port "$port"; done
    log "all nodes stopped"
}

cmd_destroy() {
    # Walk the node dirs rather than env: a half-created cluster has nodes but no env yet.
    local d
    for d in "$STATE_DIR"/node-*; do
        [[ -d $d ]] && stop_node_port "${d##*/node-}"
    done
    rm -rf "${STATE_DIR:?}"
    log "removed $STATE_DIR"
}

print_status() {
    local i port pid role
    for i in "${!PORTS[@]}"; do
        port=${PORTS[$i]}
        if pid=$(node_pid "$port"); then
            role=$(cli "$port" info replication 2>/dev/null | tr -d '\r' | sed -n 's/^role://p') || role="?"
            printf '%d 127.0.0.1:%d pid=%s role=%s\n' "$i" "$port" "$pid" "${role:-?}"
        else
            printf '%d 127.0.0.1:%d down\n' "$i" "$port"
        fi
    done
}

cmd_status() {
    load_env || { log "no cluster in $STATE_DIR"; return 1; }
    print_status
    if cluster_healthy; then echo "healthy"; else echo "unhealthy"; return 1; fi
}

node_port_arg() {
    local n=${1:-}
    if [[ ! $n =~ ^[0-9]+$ ]] || ((n >= NODE_COUNT)); then
        die "node index must be 0..$((NODE_COUNT - 1)), got '$n'"
    fi
    load_env || die "no cluster in $STATE_DIR"
    echo "${PORTS[$n]}"
}

main() {
    parse_args "$@"
    lock_state_dir
    [[ -d $STATE_DIR ]] && load_password
    case ${ARGS[0]} in
        start) cmd_start ;;
        stop) cmd_stop ;;
        destroy) cmd_destroy; rm -f "$STATE_DIR.lock" ;;
        status) cmd_status ;;
        wait) load_env || die "no cluster in $STATE_DIR"; wait_healthy "${TIMEOUT:-$START_TIMEOUT}" ;;
        kill-node) stop_node_port "$(node_port_arg "${ARGS[1]:-}")" KILL ;;
        start-node) start_node_port "$(node_port_arg "${ARGS[1]:-}")" ;;
        *) usage ;;
    esac
}

main "$@"
