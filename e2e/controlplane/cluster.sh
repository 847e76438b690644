#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Local Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (fake nodes), built from pinned sources, no Docker.
#   cluster.sh build | up | down | status
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
  trap on_up_exit EXIT
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
  trap - EXIT
  echo "# start took $((SECONDS - t0)) s (binaries from the cache; build time not included)"
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
