#!/usr/bin/env bash
# The real node (`cluster.sh up --real-node`): certificates, containerd, the kubelet, kube-proxy and
# the add-ons (CoreDNS, metrics-server). Sourced by cluster.sh after node-build.sh and node-net.sh.
# Everything it writes lives in $STATE/node (and $STATE/pki); node-net.sh undoes what cannot.

NODE_DIR="$STATE/node"
CONTAINERD_SOCK="$NODE_DIR/containerd/containerd.sock"
# kubelet/API-server/metrics-server to kubelet, node IP ports; the rest on loopback.
NODE_PORT_NAMES=(KUBELET KUBELET_HEALTHZ KUBE_PROXY_HEALTHZ KUBE_PROXY_METRICS)

# Certificates of the real node, each made once per state dir (a plain cluster's PKI gains them
# when it first starts with --real-node).
ensure_node_pki() {
  local d="$STATE/pki"
  cert_once() { [[ -s $d/$1.crt ]] || make_cert "$d" "$@"; }
  # The API server listens on the node IP in real-node mode: the same names plus that address.
  # shellcheck disable=SC2153 # NODE_IP is set by node-net.sh
  cert_once apiserver-node "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$NODE_IP,IP:$(int_to_ip $(($(ip_to_int "${SERVICE_CIDR%/*}") + 1))),DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # API server -> kubelet (logs, exec, port-forward): system:masters, so the kubelet's webhook
  # authorization (a SubjectAccessReview) allows it.
  cert_once apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # The kubelet: client (Node authorizer identity) and serving certificate for the node IP.
  cert_once node-kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  cert_once kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth \
    "IP:$NODE_IP,DNS:$NODE_NAME"
  # Bound to the built-in system:node-proxier role.
  cert_once kube-proxy "/CN=system:kube-proxy" clientAuth
  # The aggregation layer (metrics.k8s.io): a CA of its own for the front proxy, as kubeadm does.
  [[ -s $d/front-proxy-ca.crt ]] || make_ca "$d" front-proxy-ca quantum-router-front-proxy-ca
  cert_once front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
  cert_once metrics-server "/CN=metrics-server" serverAuth \
    "DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.cluster.local"
  return 0
}

# The API server's flags that differ in real-node mode (one per line, for mapfile): it listens on
# the node IP (pods reach it through the kubernetes Service, whose endpoint is that address), calls
# kubelets with a client certificate, checks their serving certificates, never resolves node names,
# and serves the aggregation layer for metrics-server.
node_apiserver_flags() {
  local p="$STATE/pki"
  printf '%s\n' --bind-address="$NODE_IP" --advertise-address="$NODE_IP" \
    --endpoint-reconciler-type=lease \
    --tls-cert-file="$p/apiserver-node.crt" --tls-private-key-file="$p/apiserver-node.key" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$p/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$p/front-proxy-client.crt" \
    --proxy-client-key-file="$p/front-proxy-client.key" --enable-aggregator-routing=true
}

# CNI: one bridge, host-local addresses on POD_CIDR. isGateway gives the bridge the node IP (already
# set by net_up); isDefaultGateway false and the single extra route (the Service range via the
# node) mean a pod has no route to anything but the bridge's subnet and the Services; ipMasq false:
# nothing is NATed to the outside. hairpinMode lets a pod reach itself through its Service.
write_cni_config() {
  mkdir -p "$NODE_DIR/cni/net.d"
  cat >"$NODE_DIR/cni/net.d/10-qr.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "qr-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni-ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
}

# containerd 2 (config version 3): every path under the node dir, no imports from /etc, cgroupfs,
# and only the plugins the CRI needs. restrict_oom_score_adj: this VM withholds CAP_SYS_RESOURCE,
# so runc cannot lower oom_score_adj (every sandbox fails with "can't get final child's PID from
# pipe: EOF" without it). runtime_path: our own shim, not Debian's containerd 1.6 one on PATH.
write_containerd_config() {
  local c="$NODE_DIR/containerd" runc
  runc=$(command -v runc)
  mkdir -p "$c"
  cat >"$NODE_DIR/containerd.toml" <<TOML
version = 3
root = '$c/root'
state = '$c/state'
temp = '$c/tmp'
imports = []
disabled_plugins = [
  'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs',
  'io.containerd.mount-handler.v1.erofs', 'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing', 'io.containerd.nri.v1.nri',
]

[grpc]
  address = '$CONTAINERD_SOCK'

[ttrpc]
  address = '$CONTAINERD_SOCK.ttrpc'

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = '$c/opt'

  # Required by the transfer service (image import); an empty dir means no verifier.
  [plugins.'io.containerd.image-verifier.v1.bindir']
    bin_dir = '$c/image-verifier'

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    enable_cdi = false
    enable_criu = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        runtime_path = '$NODE_ROOT/containerd/containerd-shim-runc-v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$runc'
          Root = '$c/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$CNI_BIN']
      conf_dir = '$NODE_DIR/cni/net.d'
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
TOML
}

nctr() { "$NODE_ROOT/containerd/ctr" --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

start_containerd() {
  write_cni_config
  write_containerd_config
  # Our shim first on PATH too (containerd looks shims up there before its own directory).
  PATH="$NODE_ROOT/containerd:$PATH" start_proc containerd "$NODE_ROOT/containerd/containerd" \
    --config "$NODE_DIR/containerd.toml" --log-level warn
  wait_for 60 "containerd" nctr version
}

# The node's images and the project's, from OCI archives (no registry): pause, CoreDNS and
# metrics-server built with the node; router, operator, redis, postgres from images/build.sh.
import_images() {
  local name file have
  have=$(nctr images ls -q 2>>"$STATE/logs/ctr.log")
  while read -r name file; do
    [[ $name == *quantum-router-base:* ]] && continue
    grep -qxF "$name" <<<"$have" && continue
    # ctr warns on every call that cgroup v1 is deprecated: to the log, not the terminal.
    nctr images import --local --snapshotter overlayfs "$file" >/dev/null 2>>"$STATE/logs/ctr.log" ||
      die "ctr import of $file failed"
  done < <(
    echo "$PAUSE_IMAGE $NODE_IMAGES/pause.tar"
    echo "$COREDNS_IMAGE $NODE_IMAGES/coredns.tar"
    echo "$METRICS_SERVER_IMAGE $NODE_IMAGES/metrics-server.tar"
    "$CP_DIR/../../images/build.sh" all
  )
}

# The kubelet: x509 client certificates (the API server's) and webhook tokens (metrics-server's
# ServiceAccount), webhook authorization, never anonymous; serving on the node IP with a
# certificate from the cluster CA; health on loopback; root dir, pod logs and resolv.conf under the
# node dir. failCgroupV1 false: this VM has cgroup v1 (no systemd, hence cgroupfs).
write_kubelet_config() {
  local p="$STATE/pki"
  mkdir -p "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs"
  # No upstream resolvers: names outside the cluster do not resolve (CoreDNS has no forwarder).
  echo "# quantum-router real node: cluster names only (CoreDNS at $(dns_ip))" >"$NODE_DIR/resolv.conf"
  cat >"$NODE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: $PORT_KUBELET
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $PORT_KUBELET_HEALTHZ
tlsCertFile: $p/kubelet-serving.crt
tlsPrivateKeyFile: $p/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $p/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
clusterDomain: cluster.local
clusterDNS: [$(dns_ip)]
resolvConf: $NODE_DIR/resolv.conf
podLogsDir: $NODE_DIR/pod-logs
volumePluginDir: $NODE_DIR/kubelet/volume-plugins
failSwapOn: false
makeIPTablesUtilChains: false
serializeImagePulls: false
# No registry: never garbage-collect the imported images; evict only on a really full disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
maxPods: 50
YAML
}

start_kubelet() {
  write_kubeconfig "$STATE/kubelet.kubeconfig" node-kubelet
  write_kubelet_config
  start_proc kubelet "$NODE_ROOT/kubelet/kubelet" --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --root-dir="$NODE_DIR/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --node-labels=type=real
}

# iptables mode; node ports only on the node IP, none on localhost (that would need route_localnet);
# conntrack settings of zero leave the host's conntrack sysctls alone.
start_kube_proxy() {
  write_kubeconfig "$STATE/kube-proxy.kubeconfig" kube-proxy
  cat >"$NODE_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$PORT_KUBE_PROXY_HEALTHZ
metricsBindAddress: 127.0.0.1:$PORT_KUBE_PROXY_METRICS
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  start_proc kube-proxy "$NODE_ROOT/kubelet/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml"
}

# The kubelet sets kernel.panic=10 and kernel.panic_on_oops=1 once, at start (it refuses to start
# instead with protectKernelDefaults). On a machine shared with other work an oops must not reboot
# it, so the saved values go back as soon as the node is Ready; the kubelet does not set them again.
restore_panic_sysctls() {
  local s v
  for s in kernel.panic kernel.panic_on_oops; do
    v=$(sed -n "s/^sysctl $s //p" "$NODE_DIR/host.saved")
    [[ -z $v ]] || sysctl -qw "$s=$v"
  done
}

node_ready() {
  [[ $(kctl get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

apiservice_available() {
  [[ $(kctl get apiservice v1beta1.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}

# CoreDNS (cluster names only: no forwarder, so no query leaves the machine) with the kube-dns
# Service at the kubelet's clusterDNS address, and metrics-server registered as
# v1beta1.metrics.k8s.io. Both pinned to the real node; unprivileged ports (1053, 4443) inside the
# pods, so neither needs a capability.
apply_addons() {
  local ca
  ca=$(base64 -w0 <"$STATE/pki/ca.crt")
  kctl -n kube-system create secret tls metrics-server-tls --cert="$STATE/pki/metrics-server.crt" \
    --key="$STATE/pki/metrics-server.key" --dry-run=client -o yaml | kctl apply -f - >/dev/null
  sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" -e "s|@METRICS_SERVER_IMAGE@|$METRICS_SERVER_IMAGE|g" \
    -e "s|@DNS_IP@|$(dns_ip)|g" -e "s|@NODE_NAME@|$NODE_NAME|g" -e "s|@CA_BUNDLE@|$ca|g" \
    "$CP_DIR/addons.yaml" | kctl apply -f - >/dev/null
}

# Sets API_ADDR, PORT_NAMES and COMPONENTS for real-node mode (before ports and kubeconfigs).
node_mode() {
  # shellcheck disable=SC2034 # read by pki.sh and cluster.sh
  API_ADDR=$NODE_IP
  PORT_NAMES+=("${NODE_PORT_NAMES[@]}")
  COMPONENTS+=(containerd kubelet kube-proxy)
}

# Starts the node once the control plane is up: containerd, images, kubelet, kube-proxy, add-ons.
start_real_node() {
  local t0=$SECONDS
  start_containerd
  import_images
  log "images imported ($((SECONDS - t0)) s)"
  start_kubelet
  start_kube_proxy
  wait_for 120 "node $NODE_NAME Ready" node_ready
  restore_panic_sysctls
  wait_for 60 "kube-proxy /healthz" curl -sf "http://127.0.0.1:$PORT_KUBE_PROXY_HEALTHZ/healthz"
  echo "# node $NODE_NAME Ready $((SECONDS - t0)) s after containerd start"
  apply_addons
  wait_for 180 "CoreDNS Available" kctl -n kube-system wait --for=condition=Available \
    deployment/coredns --timeout=1s
  wait_for 180 "metrics.k8s.io Available" apiservice_available
}
