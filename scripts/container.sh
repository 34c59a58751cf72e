#!/usr/bin/env bash
# Builds the container image (deploy/container/Dockerfile) with podman and runc. No registry is
# reachable here, so the Debian 12 base image is made first, once: a debootstrap (minbase) root
# file system, slimmed like debian:bookworm-slim (no docs, man pages or locales), imported.
#   bash scripts/container.sh [IMAGE]      (default IMAGE: localhost/fieldlink:latest)
# Prints the base and image sizes. Root is needed (debootstrap, rootful podman).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-localhost/fieldlink:latest}
BASE=localhost/fieldlink-base:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# This machine's limits, not podman's defaults (which it may not raise: no CAP_SYS_RESOURCE).
PODMAN=(podman --runtime runc)
LIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)

if ! "${PODMAN[@]}" image exists "$BASE"; then
    root=$(mktemp -d /var/tmp/fieldlink-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    echo "container.sh: debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
    # What debian:bookworm-slim leaves out, for later packages too.
    cat > "$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$root"/usr/share/{man,info,locale,lintian}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
        "$root"/var/log/*.log "$root"/var/log/apt/*
    echo "deb $MIRROR bookworm main" > "$root/etc/apt/sources.list"
    tar -C "$root" -c . | "${PODMAN[@]}" import -q --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
fi
# A build that was killed (a CI job stopped at its time limit, ^C) leaves its buildah working
# containers behind; they pin the build stage's images, which then cannot be pruned. Podman's own
# containers are left alone: only build containers (state "Storage") go.
while read -r id name state; do
    if [[ $state == Storage && $name == *-working-container ]]; then
        echo "container.sh: removing $name, left by an interrupted build"
        "${PODMAN[@]}" rm -f --storage "$id" >/dev/null || true
    fi
done < <("${PODMAN[@]}" ps -a --external --format '{{.ID}} {{.Names}} {{.State}}')
echo "container.sh: building $IMAGE on $BASE"
"${PODMAN[@]}" build -q --format docker --network host "${LIMITS[@]}" --build-arg "BASE=$BASE" \
    -f deploy/container/Dockerfile -t "$IMAGE" . >/dev/null
# The build stage's layers. Space only: an image something else still holds is not our failure.
"${PODMAN[@]}" image prune -f >/dev/null || echo "container.sh: warning: podman image prune failed; image is built"
size() { "${PODMAN[@]}" image inspect --format '{{.Size}}' "$1"; }
echo "container.sh: base $BASE $(($(size "$BASE") / 1024)) KiB; image $IMAGE $(($(size "$IMAGE") / 1024)) KiB"
