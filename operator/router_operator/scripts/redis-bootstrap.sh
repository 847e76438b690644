#!/bin/sh
# Creates the Redis Cluster from its pods, once. Safe to run again: an existing or forming cluster is
# left alone. Env: REDIS_NODES ("host:port host:port ..."), REDIS_REPLICAS (replicas per shard),
# REDISCLI_AUTH (the password, read by redis-cli itself so it never shows in a process list).
set -eu
: "${REDIS_NODES:?}" "${REDIS_REPLICAS:?}"

cli() { addr=$1; shift; redis-cli -h "${addr%:*}" -p "${addr##*:}" "$@"; }
state() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2:\(.*\)/\1/p"; }

addrs=""
for node in $REDIS_NODES; do
  until cli "$node" ping 2>/dev/null | grep -q PONG; do
    echo "waiting for $node"
    sleep 2
  done
  # redis-cli --cluster create wants addresses; the nodes announce their stable hostnames themselves.
  ip=$(getent hosts "${node%:*}" | awk '{print $1; exit}')
  addrs="$addrs ${ip:-${node%:*}}:${node##*:}"
done

first=${REDIS_NODES%% *}
if [ "$(state "$first" cluster_state)" = ok ]; then
  echo "cluster already created"
  exit 0
fi
if [ "$(state "$first" cluster_known_nodes)" -le 1 ]; then
  # shellcheck disable=SC2086 # one argument per address
  redis-cli --cluster create $addrs --cluster-replicas "$REDIS_REPLICAS" --cluster-yes
else
  echo "a cluster is already forming; waiting for it"
fi
# Ready means every slot is served and every replica is attached (roles spread by gossip).
total=0
for _ in $REDIS_NODES; do total=$((total + 1)); done
want_replicas=$((total - total / (REDIS_REPLICAS + 1)))
replicas() { cli "$first" cluster nodes 2>/dev/null | grep -c slave || true; }
i=0
until [ "$(state "$first" cluster_state)" = ok ] && [ "$(replicas)" -ge "$want_replicas" ]; do
  i=$((i + 1))
  [ "$i" -le 150 ] || { echo "cluster not ready: state $(state "$first" cluster_state), $(replicas) replicas" >&2; exit 1; }
  sleep 2
done
echo "cluster ready"
