#!/usr/bin/env bash
# Builds what the real node (`cluster.sh up --real-node`) runs: containerd, CNI plugins, kubelet,
# kube-proxy, CoreDNS, metrics-server and three images made from scratch (pause, CoreDNS,
# metrics-server). It all goes to a cache dir of its own, keyed by the node's pins, so a plain `up`
# never builds any of it and the control plane's cache stays valid.
# Sourced by cluster.sh after build.sh (go_bin, go_env, kube_ldflags, check_pins).

# Image names of the node's own images (imported into containerd, never pushed anywhere).
PAUSE_IMAGE="localhost/quantum-router-pause:$KUBE_VERSION"
COREDNS_IMAGE="localhost/quantum-router-coredns:$COREDNS_VERSION"
METRICS_SERVER_IMAGE="localhost/quantum-router-metrics-server:$METRICS_SERVER_VERSION"

# node_part NAME FUNCTION: builds one part into NODE_ROOT/NAME once (FUNCTION gets a scratch dir,
# renamed when it succeeds, so a failed or interrupted build is never a cache hit); prints its time.
node_part() {
  local name=$1 fn=$2 dir="$NODE_ROOT/$1" t0=$SECONDS
  [[ -d $dir ]] && return 0
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  log "building $name (real node)"
  "$fn" "$dir.tmp"
  mv "$dir.tmp" "$dir"
  echo "# build of $name took $((SECONDS - t0)) s"
}

# containerd 2 and its runc shim; no btrfs (needs cgo headers), no generated CLI docs.
build_containerd() {
  local m=github.com/containerd/containerd/v2
  GOBIN="$1" "$GO" install -trimpath -tags 'no_btrfs urfave_cli_no_docs' \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION" \
    "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

build_cni() {
  local m=github.com/containernetworking/plugins/plugins
  GOBIN="$1" "$GO" install -trimpath -ldflags "-s -w" "$m/main/bridge@$CNI_PLUGINS_VERSION" \
    "$m/main/loopback@$CNI_PLUGINS_VERSION" "$m/ipam/host-local@$CNI_PLUGINS_VERSION" \
    "$m/meta/portmap@$CNI_PLUGINS_VERSION"
}

# From the same wrapper module (and so the same pins) as the control plane.
build_kubelet() {
  (cd "$CP_DIR/kube" && "$GO" build -trimpath -ldflags "$(kube_ldflags)" -o "$1/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
}

build_coredns() {
  GOBIN="$1" "$GO" install -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
}

build_metrics_server() {
  GOBIN="$1" "$GO" install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/metrics-server/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
}

# scratch_image DIR NAME FILE ENTRYPOINT_JSON [USER]: a one-binary image from scratch, written to
# DIR/<file name>.tar as an OCI archive. buildah's store is a throwaway dir inside DIR.
scratch_image() {
  local dir=$1 name=$2 file=$3 entrypoint=$4 user=${5:-65534:65534} c
  local b=(buildah --storage-driver vfs --root "$dir/store" --runroot "$dir/store-run")
  c=$("${b[@]}" from --quiet scratch)
  "${b[@]}" copy --quiet --chmod 0755 "$c" "$file" "/$(basename "$file")" >/dev/null
  "${b[@]}" config --entrypoint "$entrypoint" --cmd '' --user "$user" \
    --label "quantumrouter.dev/built-from=$name" "$c"
  "${b[@]}" commit --quiet "$c" "$name" >/dev/null
  "${b[@]}" push --quiet "$name" "oci-archive:$dir/$(basename "$file").tar:$name" >&2
  "${b[@]}" rm "$c" >/dev/null
  # vfs keeps plain directories (no mounts): removing the store is enough.
  rm -rf "$dir/store" "$dir/store-run"
}

# The pause binary from the pinned Kubernetes source, static so the image needs nothing else.
build_images() {
  local out=$1 src tag
  command -v buildah >/dev/null || apt_install buildah
  command -v gcc >/dev/null && [[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] \
    || apt_install gcc libc6-dev
  src=$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -f $src/build/pause/linux/pause.c ]] || { echo "pause.c not found in $src" >&2; return 1; }
  tag=$(sed -n 's/^TAG ?= //p' "$src/build/pause/Makefile")
  mkdir -p "$out/src"
  gcc -Os -Wall -Werror -static -DVERSION="v$tag-qr" -o "$out/src/pause" "$src/build/pause/linux/pause.c"
  scratch_image "$out" "$PAUSE_IMAGE" "$out/src/pause" '["/pause"]'
  scratch_image "$out" "$COREDNS_IMAGE" "$NODE_ROOT/coredns/coredns" '["/coredns"]'
  scratch_image "$out" "$METRICS_SERVER_IMAGE" "$NODE_ROOT/metrics-server/metrics-server" \
    '["/metrics-server"]'
  rm -rf "$out/src"
}

# Sets NODE_ROOT (containerd/, kubelet/ with kube-proxy, coredns/, metrics-server/), CNI_BIN and
# NODE_IMAGES (OCI archives); builds only the parts the versioned dir lacks.
ensure_node_binaries() {
  NODE_ROOT="$QR_CACHE/k8s-node/kube-$KUBE_VERSION-containerd-$CONTAINERD_VERSION-cni-$CNI_PLUGINS_VERSION"
  NODE_ROOT+="-coredns-$COREDNS_VERSION-metrics-server-$METRICS_SERVER_VERSION-r$NODE_RECIPE_REVISION"
  CNI_BIN="$NODE_ROOT/cni"
  NODE_IMAGES="$NODE_ROOT/images"
  [[ -d $NODE_IMAGES && -d $NODE_ROOT/kubelet && -d $NODE_ROOT/containerd && -d $CNI_BIN ]] && return 0
  mkdir -p "$NODE_ROOT"
  local lockfd
  exec {lockfd}>"$NODE_ROOT/.lock"
  flock "$lockfd"
  check_pins
  node_part containerd build_containerd
  node_part cni build_cni
  node_part kubelet build_kubelet
  node_part coredns build_coredns
  node_part metrics-server build_metrics_server
  node_part images build_images
  exec {lockfd}>&-
}
