#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Local Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (fake nodes), built from pinned sources, no Docker. With --real-node
# (root only) also a real node that runs containers: containerd, kubelet, kube-proxy, CNI bridge,
# CoreDNS and metrics-server (lib/node*.sh; one per machine).
#   cluster.sh build [--real-node] | up [--real-node] | down | status
# Binaries:  ${QR_CACHE:-$HOME/.cache/quantum-router}/k8s/<versions>/bin
# State:     ${QR_CLUSTER_DIR:-${TMPDIR:-/tmp}/quantum-router-cluster}
# Progress goes to stderr; stdout ends with `export KUBECONFIG=...` and `export PATH=...`.
set -euo pipefail

CP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QR_CACHE=${QR_CACHE:-$HOME/.cache/quantum-router}
STATE=${QR_CLUSTER_DIR:-${TMPDIR:-/tmp}/quantum-router-cluster}
# Absolute, because pid checks match the state dir in each component's command line.
[[ $STATE == /* ]] || STATE="$PWD/$STATE"

log() { echo "cluster.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# shellcheck source=versions.env
source "$CP_DIR/versions.env"
# shellcheck source=lib/build.sh
source "$CP_DIR/lib/build.sh"
# shellcheck source=lib/pki.sh
source "$CP_DIR/lib/pki.sh"
# shellcheck source=lib/procs.sh
source "$CP_DIR/lib/procs.sh"
# shellcheck source=lib/components.sh
source "$CP_DIR/lib/components.sh"
# shellcheck source=lib/node-build.sh
source "$CP_DIR/lib/node-build.sh"
# shellcheck source=lib/node-net.sh
source "$CP_DIR/lib/node-net.sh"
# shellcheck source=lib/node.sh
source "$CP_DIR/lib/node.sh"

APT_UPDATED=""
# apt_install PACKAGE...: Debian packages, with one `apt-get update` first (CI: root, no stdin).
apt_install() {
  command -v apt-get >/dev/null || die "need $*, and there is no apt-get to install them"
  local sudo=""
  ((EUID == 0)) || sudo=sudo
  log "installing $*"
  [[ -n $APT_UPDATED ]] || { $sudo apt-get update -qq >&2 && APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# A fresh machine may lack these; flock and setsid come from util-linux.
ensure_tools() {
  local t
  for t in openssl curl flock setsid; do
    command -v "$t" >/dev/null || { apt_install openssl curl util-linux ca-certificates; break; }
  done
}

# On failure, stop whatever this run started and show the logs' last lines.
on_up_exit() {
  local rc=$?
  ((rc == 0)) && return 0
  log "start failed (exit $rc); last log lines:"
  tail -n 5 "$STATE"/logs/*.log >&2 2>/dev/null || true
  cmd_down || true
}

running_count() {
  local c n=0
  for c in "${COMPONENTS[@]}"; do is_running "$c" && n=$((n + 1)); done
  echo "$n"
}

print_exports() {
  echo "export KUBECONFIG=$STATE/admin.kubeconfig"
  echo "export PATH=$BIN_DIR:\$PATH"
}

# What the real node needs from Debian: runc, iptables (kube-proxy), nft (cleanup of the tables
# iptables-nft creates), buildah and gcc (its images, when not cached).
ensure_node_tools() {
  local t missing=()
  ((EUID == 0)) || die "--real-node needs root (network, mounts, cgroups); run as root"
  for t in runc iptables nft ip; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]} == 0)) || apt_install runc iptables nftables iproute2
}

cmd_up() {
  REAL_NODE=""
  [[ ${1:-} != --real-node ]] || REAL_NODE=1
  ensure_tools
  ensure_binaries
  if [[ -n $REAL_NODE ]]; then
    ensure_node_tools
    ensure_node_binaries
    node_mode
  fi
  mkdir -p "$STATE/logs" "$STATE/run"
  local n t0=$SECONDS
  n=$(running_count)
  if ((n == ${#COMPONENTS[@]})) && [[ -f $STATE/ports.env ]]; then
    log "already up ($STATE)"
    print_exports
    return 0
  fi
  # Half up (a component crashed), or a real node's host state left by a run that died: start over
  # from a clean slate; etcd data is kept.
  if ((n > 0)) || has_real_node; then cmd_down; fi
  trap on_up_exit EXIT
  ensure_pki
  if [[ -n $REAL_NODE ]]; then
    # One real node per machine: under a lock, refuse if another state dir owns the bridges; then
    # the marker, so that from here on `down` knows it has host state to undo.
    local lockfd
    exec {lockfd}>"$NODE_ROOT/.real-node.lock"
    flock "$lockfd"
    check_no_conflict
    mkdir -p "$NODE_DIR"
    echo "NODE_ROOT=$NODE_ROOT" >"$NODE_DIR/real-node.env"
    save_host_state
    net_up
    exec {lockfd}>&-
    ensure_node_pki
  fi
  choose_ports
  write_kubeconfig "$STATE/admin.kubeconfig" admin
  write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$STATE/scheduler.kubeconfig" scheduler
  log "starting in $STATE (api https://$API_ADDR:$PORT_APISERVER)"
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_kwok
  apply_nodes
  wait_for 60 "kube-controller-manager /healthz" healthz "$PORT_CONTROLLER_MANAGER"
  wait_for 60 "kube-scheduler /healthz" healthz "$PORT_SCHEDULER"
  wait_for 60 "kwok nodes Ready" nodes_ready
  # Pods cannot be admitted in a namespace until its default ServiceAccount exists.
  wait_for 60 "default ServiceAccount" kctl get serviceaccount default -n default
  [[ -z $REAL_NODE ]] || start_real_node
  trap - EXIT
  echo "# start took $((SECONDS - t0)) s (binaries from the cache; build time not included)"
  print_exports
}

# A real node was started in this state dir (and may have left host state behind).
has_real_node() { [[ -f $NODE_DIR/real-node.env ]]; }

cmd_down() {
  local i c
  if has_real_node; then
    ((EUID == 0)) || die "this state dir has a real node; its cleanup needs root"
    # shellcheck disable=SC1091
    source "$NODE_DIR/real-node.env"
    [[ " ${COMPONENTS[*]} " == *" kubelet "* ]] || COMPONENTS+=(containerd kubelet kube-proxy)
  fi
  # Reverse order: the node first, then clients, etcd last. The node's pods go before the control
  # plane: the API server's shutdown otherwise waits on the connections of CoreDNS and
  # metrics-server (30 s, then SIGKILL).
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    [[ ${COMPONENTS[i]} != kwok ]] || ! has_real_node || kill_node_processes
    stop_proc "${COMPONENTS[i]}"
  done
  # Pods, shims, mounts, iptables, interfaces, sysctls, host paths, cgroups.
  if has_real_node; then node_cleanup; fi
  if [[ -f $STATE/ports.env ]]; then
    # shellcheck disable=SC1091
    source "$STATE/ports.env"
    for c in "${PORT_NAMES[@]}"; do
      local var="PORT_$c"
      wait_for 30 "port ${!var} to be released" bash -c "! awk -v h=\":\$(printf '%04X' ${!var})\" \
        'FNR > 1 && substr(\$2, length(\$2) - 4) == h && \$4 == \"0A\" {f=1} END {exit !f}' \
        /proc/net/tcp /proc/net/tcp6"
    done
  fi
  log "down ($STATE)"
}

cmd_status() {
  local c rc=0
  if has_real_node; then COMPONENTS+=(containerd kubelet kube-proxy); fi
  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then echo "$c running pid $(pid_of "$c")"; else echo "$c stopped"; rc=1; fi
  done
  [[ -f $STATE/ports.env ]] && sed 's/^/# /' "$STATE/ports.env"
  return "$rc"
}

main() {
  case "${1:-}" in
    build)
      ensure_tools && ensure_binaries
      [[ ${2:-} != --real-node ]] || ensure_node_binaries
      echo "export PATH=$BIN_DIR:\$PATH"
      ;;
    up) cmd_up "${2:-}" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) die "usage: cluster.sh build [--real-node] | up [--real-node] | down | status" ;;
  esac
}

main "$@"
