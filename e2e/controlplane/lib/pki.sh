#!/usr/bin/env bash
# Certificates and kubeconfigs for the local control plane (sourced by cluster.sh).
# Everything lives in $STATE/pki; created once per state dir so a restart keeps identities.

# A minimal openssl config per certificate: the distro's openssl.cnf adds extensions of its own.
cert_conf() {
  local ext=$1
  printf '[req]\ndistinguished_name=dn\n[dn]\n[ext]\n%b\n' "$ext"
}

# make_ca DIR [NAME [CN]]: NAME.key and NAME.crt (the real node adds a second CA, front-proxy-ca).
make_ca() {
  local d=$1 name=${2:-ca} cn=${3:-quantum-router-test-ca}
  openssl genrsa -out "$d/$name.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$d/$name.key" -subj "/CN=$cn" -days 3650 \
    -extensions ext -config <(cert_conf \
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash') \
    -out "$d/$name.crt"
}

# make_cert DIR NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES [CA_NAME]]
make_cert() {
  local d=$1 name=$2 subj=$3 eku=$4 san=${5:-} ca=${6:-ca}
  local ext="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=$eku"
  [[ -n $san ]] && ext+="\nsubjectAltName=$san"
  openssl genrsa -out "$d/$name.key" 2048 2>/dev/null
  openssl req -new -key "$d/$name.key" -subj "$subj" -config <(cert_conf "") |
    openssl x509 -req -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -extensions ext -extfile <(cert_conf "$ext") -out "$d/$name.crt" 2>/dev/null
}

ensure_pki() {
  local d="$STATE/pki"
  [[ -s $d/sa.pub ]] && return 0
  rm -rf "$d" && mkdir -p "$d" && chmod 700 "$d"
  make_ca "$d"
  # The service IP 10.0.0.1 is the first address of --service-cluster-ip-range.
  make_cert "$d" apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  make_cert "$d" admin "/O=system:masters/CN=quantum-router-admin" clientAuth
  # The built-in RBAC roles are bound to these user names.
  make_cert "$d" controller-manager "/CN=system:kube-controller-manager" clientAuth
  make_cert "$d" scheduler "/CN=system:kube-scheduler" clientAuth
  # Service-account token signing key pair.
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

# write_kubeconfig FILE USER: written on every start because the API port (and, with or without a
# real node, its address API_ADDR) may change.
write_kubeconfig() {
  local file=$1 user=$2 d="$STATE/pki"
  cat >"$file.tmp" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: quantum-router
  cluster:
    server: https://$API_ADDR:$PORT_APISERVER
    certificate-authority: $d/ca.crt
users:
- name: $user
  user:
    client-certificate: $d/$user.crt
    client-key: $d/$user.key
contexts:
- name: quantum-router
  context: {cluster: quantum-router, user: $user}
current-context: quantum-router
KCFG
  mv "$file.tmp" "$file"
}
