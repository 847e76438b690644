#!/usr/bin/env bash
# Builds the project's images here, with no registry: a Debian bookworm base made with debootstrap and
# committed with buildah, then images/Containerfile's targets on top of it.
#   images/build.sh [base|router|operator|redis|postgres|all|train]      (default: all)
# `all` is what the tests and the real node use; `train` (the training image: PyPI's torch is the CUDA
# build with its nvidia-* libraries, 6.45 GB, archive 3.4 GB; the first build took 16 min, 11 of them
# compressing the archive, and needs about 25 GB free while it runs) is built only when asked for, as
# `make images` does.
# Images live in buildah's store under ${QR_CACHE:-$HOME/.cache/quantum-router}/images (outside the
# repository); each is also written as an OCI archive there, for `ctr images import` on a real node.
# Prints one line per image: NAME ARCHIVE. Needs root (debootstrap, chroot builds).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # read by log() in common.sh
SCRIPT_NAME=images
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
# shellcheck source=images/context.sh
source "$ROOT/images/context.sh"

QR_CACHE=${QR_CACHE:-$HOME/.cache/quantum-router}
STORE=$QR_CACHE/images
SUITE=bookworm
MIRROR=${QR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The host's CA bundle, offered to pip inside the build as a secret (for TLS-inspecting proxies).
CA_BUNDLE=${QR_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
BUILDAH=(buildah --storage-driver vfs --root "$STORE/storage" --runroot "$STORE/run")

ensure_tools() {
    local missing=()
    command -v buildah >/dev/null || missing+=(buildah)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

image_exists() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

archive_path() { echo "$STORE/archives/$(echo "${1#localhost/}" | tr ':/' '__').tar"; }

# archive IMAGE: its OCI archive (written once per build); prints NAME ARCHIVE.
archive() {
    local image=$1 file
    file=$(archive_path "$image")
    mkdir -p "$STORE/archives"
    [[ -s $file ]] || "${BUILDAH[@]}" push --quiet "$image" "oci-archive:$file:$image" >&2
    echo "$image $file"
}

# The base: Debian minbase with Python 3.11 and CA certificates; docs, caches and apt lists dropped. Its
# tag carries a digest of this function, so a changed recipe builds a new base.
base_image() {
    local key
    key=$(declare -f base_image | sha256sum | cut -c1-10)
    BASE="localhost/quantum-router-base:$SUITE-$key"
    if ! image_exists "$BASE"; then
        local rootfs container
        rootfs=$(mktemp -d "$STORE/rootfs.XXXXXX")
        log "debootstrap $SUITE (minbase, python3) from $MIRROR"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$rootfs" "$MIRROR" >"$STORE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$STORE/debootstrap.log" >&2; rm -rf "$rootfs"; die "debootstrap failed"; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
        container=$("${BUILDAH[@]}" from scratch)
        "${BUILDAH[@]}" copy --quiet "$container" "$rootfs" / >/dev/null
        "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --cmd /bin/sh "$container"
        "${BUILDAH[@]}" commit --quiet "$container" "$BASE" >/dev/null
        "${BUILDAH[@]}" rm "$container" >/dev/null
        rm -rf "$rootfs"
    fi
    archive "$BASE"
}

# build TARGET KEY CONTEXT: the Containerfile target on CONTEXT, unless the image already carries KEY
# (a digest of what goes into it); prints NAME ARCHIVE.
build() {
    local target=$1 key=$2 ctx=$3 image label
    image=$(image_name "$target")
    label=$("${BUILDAH[@]}" inspect --type image \
        --format '{{index .Docker.Config.Labels "quantumrouter.dev/build-key"}}' "$image" 2>/dev/null || true)
    if [[ $label != "$key" ]]; then
        local secret=()
        [[ -s $CA_BUNDLE ]] && secret=(--secret "id=ca,src=$CA_BUNDLE")
        log "building $image (target $target)"
        "${BUILDAH[@]}" bud --quiet --network host --isolation chroot --layers=false "${secret[@]}" \
            --label "quantumrouter.dev/build-key=$key" --build-arg "BASE_IMAGE=$BASE" --target "$target" \
            -f "$ROOT/images/Containerfile" -t "$image" "$ctx" >/dev/null
        rm -f "$(archive_path "$image")"
    fi
    rm -rf "$ctx"
    archive "$image"
}

# An application image (router, operator): rebuilt when its pins, sources, the Containerfile or the
# base change.
app_image() {
    local target=$1 source_dir=$2 ctx key
    ctx=$(mktemp -d "$STORE/context.XXXXXX")
    app_context "$target" "$ctx"
    key=$( (cat "$ctx/requirements.txt" "$ROOT/images/Containerfile" "$ROOT/pyproject.toml" && echo "$BASE" \
        && cd "$ROOT" && find "$source_dir" -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-16)
    build "$target" "$key" "$ctx"
}

# A data-store image (redis, postgres): Debian packages on the base; nothing of ours inside but the user.
store_image() {
    local key
    key=$( (cat "$ROOT/images/Containerfile" && echo "$BASE") | sha256sum | cut -c1-16)
    build "$1" "$key" "$(mktemp -d "$STORE/context.XXXXXX")"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap and chroot builds)"
    ensure_tools
    mkdir -p "$STORE"
    local what=${1:-all}
    case $what in
        base) base_image ;;
        router) base_image >/dev/null && app_image router service ;;
        operator) base_image >/dev/null && app_image operator operator ;;
        redis | postgres) base_image >/dev/null && store_image "$what" ;;
        train) base_image >/dev/null && app_image train service ;;
        all)
            base_image
            app_image router service
            app_image operator operator
            store_image redis
            store_image postgres
            ;;
        *) die "usage: images/build.sh [base|router|operator|redis|postgres|all|train]" ;;
    esac
    # Superseded builds leave untagged images behind in the vfs store (each a full copy).
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
}

main "$@"
