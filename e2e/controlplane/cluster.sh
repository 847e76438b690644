#!/usr/bin/env bash
# Local Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (fake nodes), built from pinned sources, no Docker.
#   cluster.sh build | up | down | status
# Binaries:  ${QR_CACHE:-$HOME/.cache/quantum-router}/k8s/<versions>/bin
# State:     ${QR_CLUSTER_DIR:-${TMPDIR:-/tmp}/quantum-router-cluster}
# Progress goes to stderr; stdout ends with `export KUBECONFIG=...` and `export PATH=...`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR

CP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QR_CACHE=${QR_CACHE:-$HOME/.cache/quantum-router}
STATE=${QR_CLUSTER_DIR:-${TMPDIR:-/tmp}/quantum-router-cluster}

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

# A fresh machine may lack openssl or curl: install them (CI runs as root, no stdin).
ensure_tools() {
  local missing=() t
  for t in openssl curl flock setsid; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]}"
  local sudo=""
  ((EUID == 0)) || sudo=sudo
  $sudo apt-get update -qq >&2
  # flock and setsid come from util-linux.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssl curl util-linux ca-certificates >&2
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

cmd_up() {
  ensure_tools
  ensure_binaries
  mkdir -p "$STATE/logs" "$STATE/run"
  local n t0=$SECONDS
  n=$(running_count)
  if ((n == ${#COMPONENTS[@]})) && [[ -f $STATE/ports.env ]]; then
    log "already up ($STATE)"
    print_exports
    return 0
  fi
  # Half up (a component crashed): start over from a clean slate; etcd data is kept.
  ((n == 0)) || cmd_down
  ensure_pki
  choose_ports
  write_kubeconfig "$STATE/admin.kubeconfig" admin
  write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$STATE/scheduler.kubeconfig" scheduler
  log "starting in $STATE (api https://127.0.0.1:$PORT_APISERVER)"
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
  echo "# cached start took $((SECONDS - t0)) s"
  print_exports
}

cmd_down() {
  local i c
  # Reverse order: clients first, etcd last.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_proc "${COMPONENTS[i]}"; done
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
  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then echo "$c running pid $(pid_of "$c")"; else echo "$c stopped"; rc=1; fi
  done
  [[ -f $STATE/ports.env ]] && sed 's/^/# /' "$STATE/ports.env"
  return "$rc"
}

main() {
  case "${1:-}" in
    build) ensure_tools && ensure_binaries && echo "export PATH=$BIN_DIR:\$PATH" ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) die "usage: cluster.sh build|up|down|status" ;;
  esac
}

main "$@"
