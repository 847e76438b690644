#!/usr/bin/env bash
# The real node's footprint on the host: its network (two bridges, an unreachable route, a guard
# chain), the host state it changes (sysctls, paths outside the state dir, iptables, nftables) and
# the cleanup that `down` does. Sourced by cluster.sh; expects STATE, SERVICE_CIDR, KWOK_POD_CIDR.
#
# Safety rule: no packet for a pod or Service address may leave this machine. Every cluster range
# gets a local route before any pod starts (pods: the CNI bridge; Services: an empty bridge of its
# own, since this kernel has no `dummy` link type; kwok's fake pod IPs: an `unreachable` route), and
# check_cluster_routes refuses to go on unless `ip route get` resolves each of them locally.

# shellcheck disable=SC2034 # used by node.sh
NODE_NAME=${QR_REAL_NODE_NAME:-qr-real-node}
# The real node's pods. Its first address is the node IP: the kubelet, kube-proxy's node ports
# and (in real-node mode) the API server listen there, on a bridge that exists only on this host.
POD_CIDR=10.245.0.0/24
NODE_IP=10.245.0.1
POD_BRIDGE=qr-cni0
SVC_BRIDGE=qr-svc0
# Host-wide names: one real node per machine. The bridge's alias records which state dir owns it.
GUARD_CHAINS=(QR-NODE-IN QR-NODE-FWD QR-NODE-OUT)
# What kubelet, kube-proxy and the CNI bridge plugin may change; saved at `up`, restored at `down`.
NODE_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.forwarding net.ipv4.conf.default.forwarding net.ipv4.conf.all.route_localnet
  net.ipv6.conf.all.forwarding net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Paths outside the state dir that the node's components hard-code (kubelet: device plugins and
# the /var/log/containers symlinks; containerd's shims: /run/containerd; CNI's result cache).
NODE_HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /run/nri
  /var/lib/cni /opt/cni /opt/containerd /etc/cni/net.d /usr/libexec/kubernetes /etc/kubernetes)

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
int_to_ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }

# cidr_samples CIDR: the first, a middle and the last host address of a range.
cidr_samples() {
  local net=${1%/*} bits=${1#*/} base size
  base=$(ip_to_int "$net")
  size=$((1 << (32 - bits)))
  int_to_ip $((base + 1))
  int_to_ip $((base + size / 2))
  int_to_ip $((base + size - 2))
}

# The Service range's tenth address, kube-dns's fixed ClusterIP (as kubeadm does).
dns_ip() { int_to_ip $(($(ip_to_int "${SERVICE_CIDR%/*}") + 10)); }

# route_is_local ADDRESS WANT: `ip route get` must show WANT (a dev, or "unreachable") and never a
# gateway or the default route's device.
route_is_local() {
  local addr=$1 want=$2 out gw_dev
  out=$(ip -4 route get "$addr" 2>&1) || true
  gw_dev=$(ip -4 route show default | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
  if [[ $out == *" via "* || (-n $gw_dev && $out == *" dev $gw_dev "*) ]]; then
    log "error: $addr would leave the machine: $out"
    return 1
  fi
  case $want in
    # An `unreachable` route: the lookup itself fails (EHOSTUNREACH), nothing is sent.
    unreachable) [[ $out == *"No route to host"* || $out == "unreachable "* ]] ;;
    *) [[ $out == *" dev $want "* ]] ;;
  esac || { log "error: $addr does not resolve to $want: $out"; return 1; }
}

# Every cluster range resolves to our bridges or to `unreachable`, never via the default gateway.
check_cluster_routes() {
  local a
  for a in $(cidr_samples "$POD_CIDR"); do
    [[ $a == "$NODE_IP" ]] || route_is_local "$a" "$POD_BRIDGE" || return 1
  done
  for a in $(cidr_samples "$SERVICE_CIDR") "$(dns_ip)"; do route_is_local "$a" "$SVC_BRIDGE" || return 1; done
  for a in $(cidr_samples "$KWOK_POD_CIDR"); do route_is_local "$a" unreachable || return 1; done
  route_is_local "$NODE_IP" lo
}

# foreign_owner: prints the state dir of another real node that owns our bridges, if any.
foreign_owner() {
  local br owner
  for br in "$POD_BRIDGE" "$SVC_BRIDGE"; do
    [[ -e /sys/class/net/$br ]] || continue
    owner=$(cat "/sys/class/net/$br/ifalias" 2>/dev/null || true)
    [[ $owner == "$STATE" ]] || { echo "${owner:-unknown}"; return 0; }
  done
}

# Refuses when another state dir's real node is up, or the host already routes a cluster range
# somewhere else (the ranges would shadow or be shadowed by a real network).
check_no_conflict() {
  local owner cidr
  owner=$(foreign_owner)
  [[ -z $owner ]] || die "another real node is up (state dir $owner); one per machine:" \
    "stop it with QR_CLUSTER_DIR=$owner cluster.sh down"
  for cidr in "$POD_CIDR" "$SERVICE_CIDR" "$KWOK_POD_CIDR"; do
    if ip -4 route show table all to root "$cidr" | grep -vE "dev ($POD_BRIDGE|$SVC_BRIDGE)( |$)|^unreachable " |
      grep -q .; then
      die "the host already routes part of $cidr elsewhere ($(ip -4 route show table all to root "$cidr" | head -n 1))"
    fi
  done
}

# add_bridge NAME: an empty bridge owned by this state dir (alias), up.
add_bridge() {
  [[ -e /sys/class/net/$1 ]] || ip link add "$1" type bridge
  ip link set "$1" alias "$STATE"
  ip link set "$1" up
}

# The guard chains (mangle table; kube-proxy and kubelet never touch it): whatever the routes say,
# nothing with a cluster address crosses between our bridges and any other interface.
add_guard() {
  local c r
  for c in "${GUARD_CHAINS[@]}"; do iptables -t mangle -N "$c" 2>/dev/null || iptables -t mangle -F "$c"; done
  # In: cluster addresses are reachable from loopback and our bridges only.
  iptables -t mangle -A QR-NODE-IN -i lo -j RETURN
  iptables -t mangle -A QR-NODE-IN -i qr+ -j RETURN
  # Forwarded: a packet that enters or leaves through our bridges stays among them.
  iptables -t mangle -A QR-NODE-FWD -i qr+ -o qr+ -j RETURN
  iptables -t mangle -A QR-NODE-FWD -i qr+ -j DROP
  iptables -t mangle -A QR-NODE-FWD -o qr+ -j DROP
  # Out: nothing from or to a cluster address leaves through an interface that is not ours.
  iptables -t mangle -A QR-NODE-OUT -o lo -j RETURN
  iptables -t mangle -A QR-NODE-OUT -o qr+ -j RETURN
  for r in "$POD_CIDR" "$SERVICE_CIDR" "$KWOK_POD_CIDR"; do
    iptables -t mangle -A QR-NODE-IN -d "$r" -j DROP
    iptables -t mangle -A QR-NODE-OUT -d "$r" -j DROP
    iptables -t mangle -A QR-NODE-OUT -s "$r" -j DROP
  done
  iptables -t mangle -C PREROUTING -j QR-NODE-IN 2>/dev/null || iptables -t mangle -I PREROUTING -j QR-NODE-IN
  iptables -t mangle -C FORWARD -j QR-NODE-FWD 2>/dev/null || iptables -t mangle -I FORWARD -j QR-NODE-FWD
  iptables -t mangle -C POSTROUTING -j QR-NODE-OUT 2>/dev/null || iptables -t mangle -I POSTROUTING -j QR-NODE-OUT
}

# The node's network, before any of its components starts; checked before anything goes on.
net_up() {
  add_bridge "$POD_BRIDGE"
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$POD_BRIDGE"
  add_bridge "$SVC_BRIDGE"
  # src: the host talks to Services from the node IP, a cluster address, never from eth0's.
  ip route replace "$SERVICE_CIDR" dev "$SVC_BRIDGE" src "$NODE_IP"
  ip route replace unreachable "$KWOK_POD_CIDR"
  add_guard
  check_cluster_routes || die "cluster ranges are not all routed locally; refusing to start the real node"
  log "routes checked: pods $POD_CIDR on $POD_BRIDGE, Services $SERVICE_CIDR on $SVC_BRIDGE," \
    "kwok pods $KWOK_POD_CIDR unreachable"
}

net_down() {
  local br v c
  # A pod's veth outlives its bridge only while its network namespace is still mounted.
  for br in "$POD_BRIDGE" "$SVC_BRIDGE"; do
    [[ -e /sys/class/net/$br ]] || continue
    for v in /sys/class/net/"$br"/brif/*; do
      [[ -e $v ]] && ip link del "$(basename "$v")" 2>/dev/null
    done
    ip link del "$br"
  done
  ip route del unreachable "$KWOK_POD_CIDR" 2>/dev/null || true
  iptables -t mangle -D PREROUTING -j QR-NODE-IN 2>/dev/null || true
  iptables -t mangle -D FORWARD -j QR-NODE-FWD 2>/dev/null || true
  iptables -t mangle -D POSTROUTING -j QR-NODE-OUT 2>/dev/null || true
  for c in "${GUARD_CHAINS[@]}"; do
    iptables -t mangle -F "$c" 2>/dev/null && iptables -t mangle -X "$c"
  done
  return 0
}

# Once per `up` (kept across a failed start, removed by a complete `down`): sysctl values, which of
# the hard-coded host paths did not exist yet, and the nftables tables that existed.
save_host_state() {
  local f="$STATE/node/host.saved" s p
  [[ -s $f ]] && return 0
  {
    for s in "${NODE_SYSCTLS[@]}"; do
      [[ -e /proc/sys/${s//.//} ]] && echo "sysctl $s $(sysctl -n "$s")"
    done
    for p in "${NODE_HOST_PATHS[@]}"; do [[ -e $p ]] || echo "absent $p"; done
    nft list tables 2>/dev/null | sed 's/^/nft /'
  } >"$f.tmp"
  mv "$f.tmp" "$f"
}

restore_host_state() {
  local f="$STATE/node/host.saved" kind a b c
  [[ -s $f ]] || return 0
  while read -r kind a b c; do
    case $kind in
      sysctl) [[ $(sysctl -n "$a") == "$b" ]] || sysctl -qw "$a=$b" ;;
      absent) [[ -e $a ]] && rm -rf --one-file-system "$a" ;;
      *) ;;
    esac
  done <"$f"
  # nftables tables that appeared during the run (iptables-nft creates one per table it touches,
  # kube-proxy --cleanup one of its own) and are gone from the saved list.
  while read -r kind a b; do
    [[ $kind == table ]] || continue
    grep -qxF "nft table $a $b" "$f" || nft delete table "$a" "$b" 2>/dev/null || true
  done < <(nft list tables 2>/dev/null)
  return 0
}

# Pids of processes that belong to the node: in a kubepods cgroup (pod processes) or with the
# node dir in their command line (containerd's shims, which outlive containerd by design).
node_pids() {
  local f args
  # kubepods is host-wide: only when no other state dir's real node owns the host.
  if [[ -z $(foreign_owner) ]]; then
    for f in /sys/fs/cgroup/*/kubepods; do
      [[ -d $f ]] && find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
  fi
  # Read with a builtin: a grep for the path would find its own command line.
  for f in /proc/[0-9]*/cmdline; do
    mapfile -d '' args 2>/dev/null <"$f" || continue
    [[ " ${args[*]} " == *"$STATE/node/"* ]] && f=${f#/proc/} && echo "${f%/cmdline}"
  done
  return 0
}

kill_node_processes() {
  local i pids
  for ((i = 0; i < 50; i++)); do
    pids=$(node_pids | sort -u | grep -vx "$$" || true)
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  log "warning: processes still alive: $(node_pids | sort -u | tr '\n' ' ')"
}

# Mount points under the state dir and the hard-coded runtime dirs, deepest first.
node_mounts() {
  awk '{print $5}' /proc/self/mountinfo | grep -E "^($STATE/|/run/containerd/|/var/lib/kubelet)" |
    awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

unmount_node() {
  local i m
  for ((i = 0; i < 10; i++)); do
    [[ -n $(node_mounts) ]] || return 0
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done < <(node_mounts)
  done
  log "warning: mounts left: $(node_mounts | tr '\n' ' ')"
}

# ipt_cleanup CMD: rules in built-in chains that jump to KUBE-*, CNI-* or QR-NODE-* chains, then
# those chains, in every table (what kube-proxy --cleanup leaves: the kubelet's own chains).
ipt_cleanup() {
  local cmd=$1 t line chains
  command -v "$cmd" >/dev/null || return 0
  for t in filter nat mangle raw; do
    "$cmd" -t "$t" -S >/dev/null 2>&1 || continue
    while read -r line; do
      # The line is iptables' own -S output: eval restores its quoting (comments with spaces).
      eval "$cmd -t $t -D ${line#-A }" 2>/dev/null || true
    done < <("$cmd" -t "$t" -S | grep -E '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*-j (KUBE|CNI|QR-NODE)-')
    chains=$("$cmd" -t "$t" -S | sed -n 's/^-N \(\(KUBE\|CNI\|QR-NODE\)-[^ ]*\)$/\1/p')
    for line in $chains; do "$cmd" -t "$t" -F "$line" 2>/dev/null || true; done
    for line in $chains; do "$cmd" -t "$t" -X "$line" 2>/dev/null || true; done
  done
}

# cgroups the kubelet and runc created (kubepods and below), deepest first, in every hierarchy.
remove_kubepods_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $d ]] || log "warning: cgroup $d not removed"
  done
}

# Everything the node changed on the host, in dependency order; safe to run more than once.
node_cleanup() {
  local owner
  owner=$(foreign_owner)
  if [[ -n $owner ]]; then
    # Host-wide state (bridges, iptables, kubepods, sysctls) belongs to that other node now.
    log "warning: the real node of $owner owns the host network; cleaning only $STATE"
    rm -f "$STATE/node/host.saved" "$STATE/node/real-node.env"
    return 0
  fi
  kill_node_processes
  unmount_node
  if [[ -x ${NODE_ROOT:-}/kubelet/kube-proxy ]]; then
    "$NODE_ROOT/kubelet/kube-proxy" --cleanup >>"$STATE/logs/kube-proxy-cleanup.log" 2>&1 || true
  fi
  ipt_cleanup iptables
  ipt_cleanup ip6tables
  net_down
  remove_kubepods_cgroups
  restore_host_state
  # The node starts afresh on the next `up` (the API objects stay in etcd; the kubelet recreates
  # the pods): no stale containers, sandboxes or IP leases.
  rm -rf --one-file-system "$STATE/node/containerd" "$STATE/node/kubelet" "$STATE/node/cni-ipam" \
    "$STATE/node/pod-logs"
  rm -f "$STATE/node/host.saved" "$STATE/node/real-node.env"
}
