#!/usr/bin/env bash
# Loopback ports and process lifecycle for the local control plane (sourced by cluster.sh).

PORT_NAMES=(ETCD ETCD_PEER APISERVER CONTROLLER_MANAGER SCHEDULER)

# True when any socket (any state, IPv4 or IPv6) uses local port $1: read from /proc, no tools.
port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A random free port below the kernel's ephemeral range (32768+), so outgoing connections
# elsewhere on the machine cannot be handed the same port while we are down.
pick_port() {
  local p i taken=" $* "
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $taken == *" $p "* ]] && continue
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found"
}

# Sets PORT_<NAME> for every component: the previous run's ports when still free (clients
# holding an old kubeconfig keep working across a restart), fresh free ports otherwise.
choose_ports() {
  # shellcheck disable=SC2153 # STATE is set by cluster.sh, which sources this file
  local f="$STATE/ports.env" name var chosen=""
  # shellcheck disable=SC1090
  [[ -f $f ]] && source "$f"
  for name in "${PORT_NAMES[@]}"; do
    var="PORT_$name"
    if [[ -z ${!var:-} ]] || port_in_use "${!var}" || [[ " $chosen " == *" ${!var} "* ]]; then
      # shellcheck disable=SC2086 # word splitting wanted: the ports taken so far
      printf -v "$var" '%s' "$(pick_port $chosen)"
    fi
    chosen+=" ${!var}"
  done
  : >"$f.tmp"
  for name in "${PORT_NAMES[@]}"; do var="PORT_$name"; echo "$var=${!var}" >>"$f.tmp"; done
  mv "$f.tmp" "$f"
}

pid_of() { cat "$STATE/run/$1.pid" 2>/dev/null || true; }

# Alive, not a zombie, and really our binary for this state dir (pids get reused).
is_running() {
  local pid state
  pid=$(pid_of "$1")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE/"
}

# start_proc NAME CMD...: own session and process group (so `down` can signal the whole
# group), stdin closed and output to a log, so callers capturing our stdout never hang.
start_proc() {
  local name=$1 pid i; shift
  setsid "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$STATE/run/$name.pid"
  # Until the forked shell has exec'd the command, /proc/$pid/cmdline is this script's, and is_running
  # (hence all_started_alive) would call the component dead; on a busy machine that takes a while.
  for ((i = 0; i < 200; i++)); do
    [[ -r /proc/$pid/cmdline ]] || break
    grep -qF -- "$STATE/" "/proc/$pid/cmdline" && break
    sleep 0.05
  done
}

# stop_proc NAME: SIGTERM to the process group, up to 30 s for a clean exit, then SIGKILL.
stop_proc() {
  local name=$1 pid i
  if is_running "$name"; then
    pid=$(pid_of "$name")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do is_running "$name" || break; sleep 0.1; done
    if is_running "$name"; then
      log "$name did not exit after SIGTERM; killing"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do is_running "$name" || break; sleep 0.1; done
    fi
  fi
  rm -f "$STATE/run/$name.pid"
}

# Fails fast when a component started by this run has already exited.
all_started_alive() {
  local f name
  for f in "$STATE"/run/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    is_running "$name" || die "$name exited during start (log: $STATE/logs/$name.log)"
  done
}

# wait_for SECONDS WHAT CMD...: poll CMD every half second, bounded.
wait_for() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what (logs: $STATE/logs)"
    all_started_alive
    sleep 0.5
  done
}
