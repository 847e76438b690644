# shellcheck shell=bash
# Shared by the loopback server scripts: logging, apt installs, port probing, the common arguments and the
# per-state-dir lock. A script sets SCRIPT_NAME and a default STATE_DIR, defines usage(), then sources this.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian packages; CI machines are fresh, run as root and have no stdin.
apt_install() {
    [[ $(id -u) -eq 0 ]] || die "$* missing and installing needs root"
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q "$@" >&2
}

# A port is free when we can bind it on 127.0.0.1 ourselves (probing by connecting would miss
# bound-but-not-listening sockets). SO_REUSEADDR like the servers use, so the TIME_WAIT leftovers of
# a node we just stopped do not make its own port look taken.
port_free() {
    local port=$1
    if command -v python3 >/dev/null; then
        python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
    else
        # Without python3 the best we can do is "nobody listens there".
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 1; fi
    fi
}

# Parses [--dir DIR] [--timeout S] around the subcommand; sets ARGS (subcommand and operands) and TIMEOUT
# (both read by the sourcing script).
# shellcheck disable=SC2034
parse_args() {
    ARGS=()
    TIMEOUT=""
    while (($#)); do
        case $1 in
            --dir) STATE_DIR=${2:?--dir needs a value}; shift 2 ;;
            --dir=*) STATE_DIR=${1#--dir=}; shift ;;
            --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
            -h|--help) usage ;;
            *) ARGS+=("$1"); shift ;;
        esac
    done
    ((${#ARGS[@]})) || usage
    STATE_DIR=$(realpath -m "$STATE_DIR")
}

# The scripts delete what they created and nothing else: a state dir they made carries this file.
marker_file() { echo "$STATE_DIR/.quantum-router-$SCRIPT_NAME"; }

# Refuses a state dir this script did not create: `destroy` runs rm -rf on it, and a mistyped --dir must
# not cost anyone their files. `start` may adopt an absent or empty dir (mktemp -d gives one).
require_own_state_dir() {
    [[ -d $STATE_DIR && ! -f $(marker_file) ]] || return 0
    if [[ ${ARGS[0]} == start && -z $(ls -A "$STATE_DIR") ]]; then
        return 0
    fi
    die "$STATE_DIR was not created by $SCRIPT_NAME (no $(basename "$(marker_file)")); refusing to touch it"
}

# Creates (or adopts) the state dir, private to its owner, and marks it as this script's.
make_state_dir() {
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    touch "$(marker_file)"
}

# Takes the state dir's lock (one invocation at a time: parallel starts would both try to create). Without
# a state dir only `start` has work to do: stop and destroy succeed, anything else fails, and no lock file
# is left behind.
lock_state_dir() {
    if [[ ! -d $STATE_DIR && ${ARGS[0]} != start ]]; then
        log "nothing in $STATE_DIR"
        [[ ${ARGS[0]} == stop || ${ARGS[0]} == destroy ]] && exit 0
        exit 1
    fi
    require_own_state_dir
    mkdir -p "$(dirname "$STATE_DIR")"
    exec 9>"$STATE_DIR.lock"
    flock -w 120 9 || die "another $SCRIPT_NAME holds $STATE_DIR.lock"
}
