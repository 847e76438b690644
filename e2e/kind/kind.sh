#!/usr/bin/env bash
# The whole stack on kind, for people with Docker: a cluster, the images built from images/Containerfile
# and loaded into it, the operator and a RouterDeployment installed with the charts, Ready, then one
# call to /v1/execute through a port-forward.
#   e2e/kind/kind.sh [all|up|images|install|demo|down]      (default: all = up images install demo)
# Needs docker, kind, kubectl, helm and uv (`make venv` gets uv). Settings: QR_KIND_CLUSTER
# (quantum-router), QR_KIND_NAMESPACE (qr-demo), QR_KIND_PORT (18000), QR_READY_TIMEOUT (600s).
# Not run by `make test` (no Docker there): the same charts and images are tested on the local control
# plane and with buildah instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QR_CACHE=${QR_CACHE:-$HOME/.cache/quantum-router}
CLUSTER=${QR_KIND_CLUSTER:-quantum-router}
NS=${QR_KIND_NAMESPACE:-qr-demo}
PORT=${QR_KIND_PORT:-18000}
TIMEOUT=${QR_READY_TIMEOUT:-600s}
# shellcheck source=images/context.sh
source "$ROOT/images/context.sh"

log() { printf 'kind.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

need() {
    local tool
    for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is needed"; done
}

cmd_up() {
    need kind kubectl
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        log "cluster $CLUSTER exists"
    else
        kind create cluster --name "$CLUSTER" --wait 180s
    fi
    kubectl config use-context "kind-$CLUSTER" >/dev/null
}

# Docker builds on python:3.11-slim (the Containerfile's default base), then `kind load`.
cmd_images() {
    need docker kind
    local target ctx image
    for target in router operator redis postgres; do
        ctx=$(mktemp -d)
        app_context "$target" "$ctx"
        image=$(image_name "$target")
        log "building $image"
        DOCKER_BUILDKIT=1 docker build --target "$target" -f "$ROOT/images/Containerfile" -t "$image" "$ctx"
        rm -rf "$ctx"
        kind load docker-image --name "$CLUSTER" "$image"
    done
}

cmd_install() {
    need helm kubectl
    helm upgrade --install qr-operator "$ROOT/charts/quantum-router-operator" \
        --namespace quantum-router-system --create-namespace \
        --set image.repository=localhost/quantum-router-operator --set image.tag="$VERSION" --wait
    # No training image is built here (torch and Ray make it several GB): training stays off.
    helm upgrade --install router "$ROOT/charts/quantum-router" --namespace "$NS" --create-namespace \
        --set image="localhost/quantum-router:$VERSION" \
        --set cache.managed.image="localhost/quantum-router-redis:$VERSION" \
        --set database.managed.image="localhost/quantum-router-postgres:$VERSION" \
        --set training.enabled=false
    log "waiting up to $TIMEOUT for the RouterDeployment to be Ready"
    kubectl wait -n "$NS" rd/router --for=condition=Ready --timeout="$TIMEOUT" \
        || { kubectl describe -n "$NS" rd/router >&2; die "not Ready"; }
}

cmd_demo() {
    need kubectl curl python3
    local password token forward
    password=$(kubectl get secret -n "$NS" router-secrets -o jsonpath='{.data.admin-password}' | base64 -d)
    kubectl port-forward -n "$NS" svc/router "$PORT:8000" >/dev/null &
    forward=$!
    trap 'kill "$forward" 2>/dev/null || true' RETURN
    local i
    for i in $(seq 1 30); do
        curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break
        ((i < 30)) || die "port-forward to svc/router did not answer"
        sleep 1
    done
    token=$(curl -sf "http://127.0.0.1:$PORT/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"username\": \"admin\", \"password\": \"$password\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    curl -sf "http://127.0.0.1:$PORT/v1/execute" -H "Authorization: Bearer $token" \
        -H 'content-type: application/json' \
        -d '{"prompt": "Write a Python function that reverses a list", "persona": "developer", "task_type": "code_generation"}'
    echo
}

cmd_down() {
    need kind
    kind delete cluster --name "$CLUSTER"
}

main() {
    case ${1:-all} in
        all) cmd_up && cmd_images && cmd_install && cmd_demo ;;
        up) cmd_up ;;
        images) cmd_images ;;
        install) cmd_install ;;
        demo) cmd_demo ;;
        down) cmd_down ;;
        *) die "usage: e2e/kind/kind.sh [all|up|images|install|demo|down]" ;;
    esac
}

main "$@"
