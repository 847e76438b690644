# shellcheck shell=bash
# Shared by images/build.sh (buildah, here) and e2e/kind/kind.sh (Docker): image names and the build
# context of each application target. Needs ROOT (the repository) and QR_CACHE set by the caller.

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -n 1)

# image_name TARGET: the local image name of a Containerfile target (router, operator, redis, postgres).
image_name() {
    case $1 in
        router) echo "localhost/quantum-router:$VERSION" ;;
        *) echo "localhost/quantum-router-$1:$VERSION" ;;
    esac
}

uv_bin() {
    local uv
    uv=$(command -v uv || true)
    [[ -n $uv ]] || uv=$(find "$QR_CACHE" -maxdepth 3 -path '*/bin/uv' -type f 2>/dev/null | sort | tail -n 1)
    [[ -x $uv ]] || { echo "uv not found: run make venv first" >&2; return 1; }
    echo "$uv"
}

# app_context TARGET DIR: requirements.txt (pinned, hashed, from uv.lock) and the wheel of the target's
# workspace package in DIR/wheels. Data-store targets need an empty context. The training image is the
# router's package plus the `train` dependency group (torch, Ray RLlib, gymnasium, matplotlib, scipy).
app_context() {
    local target=$1 dir=$2 package uv groups=()
    case $target in
        router) package=quantum-router ;;
        train) package=quantum-router groups=(--group train) ;;
        operator) package=quantum-router-operator ;;
        *) return 0 ;;
    esac
    uv=$(uv_bin)
    mkdir -p "$dir/wheels"
    (cd "$ROOT" && "$uv" export --quiet --frozen --no-dev "${groups[@]}" --no-emit-workspace --no-editable \
        --no-header --package "$package" -o "$dir/requirements.txt" >/dev/null)
    (cd "$ROOT" && "$uv" build --quiet --wheel --package "$package" -o "$dir/wheels" >/dev/null 2>&1)
}
