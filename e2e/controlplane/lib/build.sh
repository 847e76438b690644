#!/usr/bin/env bash
# Builds the pinned control-plane binaries from the Go module proxy into a versioned cache dir.
# Sourced by cluster.sh; expects CP_DIR (this directory's parent) and the versions.env values.

# The Go toolchain: the machine's Go, else Debian's (which then fetches go1.26.8, see go_env).
go_bin() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  # Debian's Go is older than 1.26, but it can fetch the pinned toolchain from the proxy
  # (go_env sets GOTOOLCHAIN for that).
  apt_install golang-go >/dev/null
  command -v go
}

# Everything Go writes goes under the cache, never the repository or ~/go.
go_env() {
  export GOMODCACHE="$QR_CACHE/go/mod" GOCACHE="$QR_CACHE/go/build"
  # Two cores shared with other work: bound the parallelism; no VCS stamping (module builds).
  export GOFLAGS="-p=2 -buildvcs=false -mod=readonly"
  export CGO_ENABLED=0
  local minor
  minor=$("$GO" env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  # The pinned modules declare `go 1.26.0`; an older local Go fetches go1.26.8 from the proxy.
  if (( minor >= 26 )); then export GOTOOLCHAIN=local; else export GOTOOLCHAIN=go1.26.8; fi
}

# ldflags that stamp the release into component-base and client-go, so `kubectl version`
# and /version report the real version instead of v0.0.0-master.
kube_ldflags() {
  local v=${KUBE_VERSION#v} major minor x
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  x=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean"
  done
  echo "-s -w$x"
}

# Fails when the wrapper modules pin something other than versions.env says.
check_pins() {
  local got
  got=$(cd "$CP_DIR/kube" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
  [[ $got == "$KUBE_VERSION" ]] || { echo "kube/go.mod pins $got, versions.env $KUBE_VERSION" >&2; return 1; }
  got=$(cd "$CP_DIR/etcd" && "$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  [[ $got == "$ETCD_VERSION" ]] || { echo "etcd/go.mod pins $got, versions.env $ETCD_VERSION" >&2; return 1; }
}

build_binaries() {
  local out=$1 tmp="$1.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "building etcd $ETCD_VERSION"
  (cd "$CP_DIR/etcd" && "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $KUBE_VERSION"
  # One invocation for all four so the shared packages compile once.
  (cd "$CP_DIR/kube" && "$GO" build -trimpath -ldflags "$(kube_ldflags)" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  # kwok and helm have no local replaces: `go install mod@version` builds exactly their go.mod,
  # verified against the checksum database.
  log "building kwok $KWOK_VERSION"
  GOBIN="$tmp" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "building helm $HELM_VERSION"
  GOBIN="$tmp" "$GO" install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  # Publish atomically: a half-built directory never looks like a cache hit.
  mv "$tmp" "$out"
}

# The kwok binary has no built-in stages (kwokctl normally writes them): take kwok's own
# "fast" node/pod stages and the lease heartbeat from the pinned module source.
write_kwok_stages() {
  local dest=$1 dir f
  dir=$("$GO" mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || { echo "kwok module source not found" >&2; return 1; }
  : >"$dest.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$dir/kustomize/stage/$f"; } >>"$dest.tmp"
  done
  mv "$dest.tmp" "$dest"
}

# Sets BIN_DIR and KWOK_STAGES; builds only what the versioned directory lacks.
ensure_binaries() {
  GO=$(go_bin); go_env
  local key="kube-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION-r$RECIPE_REVISION"
  local root="$QR_CACHE/k8s/$key"
  BIN_DIR="$root/bin"
  KWOK_STAGES="$root/kwok-stages.yaml"
  [[ -x $BIN_DIR/kube-apiserver && -s $KWOK_STAGES ]] && return 0
  mkdir -p "$root"
  # Serialise concurrent builds (two test sessions) on the same cache entry.
  local lockfd
  exec {lockfd}>"$root/.lock"
  flock "$lockfd"
  if [[ ! -x $BIN_DIR/kube-apiserver ]]; then
    check_pins
    local t0=$SECONDS
    build_binaries "$BIN_DIR"
    echo "# build took $((SECONDS - t0)) s (binaries in $BIN_DIR)"
  fi
  [[ -s $KWOK_STAGES ]] || write_kwok_stages "$KWOK_STAGES"
  exec {lockfd}>&-
}
