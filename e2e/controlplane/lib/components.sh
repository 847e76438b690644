#!/usr/bin/env bash
# How each control-plane component is started and checked (sourced by cluster.sh).

# shellcheck disable=SC2034 # used by cluster.sh
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# Scale benchmarks need more Service addresses than the default /24 holds.
SERVICE_CIDR=${QR_SERVICE_CIDR:-10.0.0.0/24}
# Pod IPs kwok hands to pods on its fake nodes (nothing answers there; a real node routes the range
# to `unreachable`).
KWOK_POD_CIDR=10.244.0.0/16
# Where the API server listens: loopback, or the node IP with a real node (lib/node.sh node_mode).
API_ADDR=127.0.0.1
# Client rate limits of the controllers and the scheduler (Kubernetes defaults: 20/30 and 50/100);
# a scale benchmark raises them so the control plane, not a client throttle, is what it measures.
CLIENT_QPS=${QR_CLIENT_QPS:-}
client_qps_flags() {
  [[ -z $CLIENT_QPS ]] || echo "--kube-api-qps=$CLIENT_QPS --kube-api-burst=$((CLIENT_QPS * 2))"
}

start_etcd() {
  local client="http://127.0.0.1:$PORT_ETCD" peer="http://127.0.0.1:$PORT_ETCD_PEER"
  # --unsafe-no-fsync: throwaway test data; fsync dominates etcd latency on shared disks.
  start_proc etcd "$BIN_DIR/etcd" --name=qr --data-dir="$STATE/etcd" \
    --listen-client-urls="$client" --advertise-client-urls="$client" \
    --listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" \
    --initial-cluster="qr=$peer" --unsafe-no-fsync --log-level=warn
  wait_for 60 "etcd health" curl -sf "$client/health"
}

start_apiserver() {
  local p="$STATE/pki" net
  # Loopback cannot be an Endpoints address, so the "kubernetes" Service gets no endpoint
  # reconciler; clients talk to 127.0.0.1 directly. A real node's pods need the Service, so there
  # the API server listens on the node IP instead (node_apiserver_flags).
  net=(--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key")
  [[ -z ${REAL_NODE:-} ]] || mapfile -t net < <(node_apiserver_flags)
  start_proc kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$PORT_ETCD" "${net[@]}" --secure-port="$PORT_APISERVER" \
    --cert-dir="$STATE/run/apiserver-certs" \
    --client-ca-file="$p/ca.crt" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true --profiling=false
  wait_for 120 "kube-apiserver /readyz" kctl get --raw /readyz
}

start_controller_manager() {
  local p="$STATE/pki"
  # shellcheck disable=SC2046 # split on purpose: no flags, or --kube-api-qps and --kube-api-burst
  start_proc kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$PORT_CONTROLLER_MANAGER" \
    --cert-dir="$STATE/run/controller-manager-certs" \
    --leader-elect=false --use-service-account-credentials=true --controllers='*' \
    --root-ca-file="$p/ca.crt" --service-account-private-key-file="$p/sa.key" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false $(client_qps_flags)
}

start_scheduler() {
  # shellcheck disable=SC2046 # as above
  start_proc kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$PORT_SCHEDULER" \
    --cert-dir="$STATE/run/scheduler-certs" --leader-elect=false --profiling=false $(client_qps_flags)
}

start_kwok() {
  # Manages only nodes carrying the fake-node annotation; no --server-address, so it
  # opens no port. Stages (what fake pods and nodes do) come from the pinned kwok source.
  start_proc kwok "$BIN_DIR/kwok" --kubeconfig="$STATE/admin.kubeconfig" \
    --config="$KWOK_STAGES" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$KWOK_POD_CIDR" --node-ip=10.0.0.2 --node-lease-duration-seconds=40
}

# Fake nodes, large enough that tests never run out of cpu, memory or pod slots.
apply_nodes() {
  local i n=${QR_KWOK_NODES:-2}
  # QR_KWOK_NODES=0: no fake nodes (with a real node, every pod then runs for real).
  ((n > 0)) || return 0
  for ((i = 0; i < n; i++)); do
    cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "250"}
  capacity: {cpu: "64", memory: 256Gi, pods: "250"}
NODE
  done | kctl apply -f - >/dev/null
}

nodes_ready() {
  local want=${QR_KWOK_NODES:-2} got
  got=$(kctl get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c True) || true
  ((got >= want))
}

healthz() { curl -skf "https://127.0.0.1:$1/healthz"; }
kctl() { "$BIN_DIR/kubectl" --kubeconfig="$STATE/admin.kubeconfig" "$@"; }
