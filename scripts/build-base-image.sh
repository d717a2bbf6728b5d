#!/usr/bin/env bash
# Build the local Python base image (default conveyor-python:bookworm) once.
#
# No public image registry is reachable here, so the root filesystem comes from
# Debian packages (mmdebstrap) and is loaded with `docker import`; a venv at
# /opt/venv (first on PATH) supplies pip, which Debian's system python lacks.
# Needs a running daemon (`docker info`) and scripts/bootstrap.d/20-docker.sh.
#
# Time on a 2-core machine: ~40 s cold (mmdebstrap ~30 s of it); a no-op
# well under 1 s when the image exists.
#
# Env: CONVEYOR_BASE_IMAGE (tag), CONVEYOR_DEBIAN_MIRROR (apt mirror URL).
set -euo pipefail

IMAGE=${CONVEYOR_BASE_IMAGE:-conveyor-python:bookworm}
ROOTFS_TAG="${IMAGE%%:*}:rootfs-tmp"
SUITE=bookworm

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if have_image "$IMAGE"; then
    echo "$IMAGE already present"
    exit 0
fi

# Mirror: the one apt already uses successfully on this host, so offline
# setups with a local mirror work too; deb.debian.org otherwise.
find_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f" \
              | grep -E '/debian/?$' | head -n1 || true)
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f" \
              | grep -E '/debian/?$' | head -n1 || true)
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    echo http://deb.debian.org/debian
}
MIRROR=${CONVEYOR_DEBIAN_MIRROR:-$(find_mirror)}

for tool in docker mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "$tool missing; run: bash scripts/bootstrap.sh" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "no docker daemon answers 'docker info'" >&2; exit 1; }

# Concurrent test sessions must not build the same image twice.
exec 9>/tmp/conveyor-base-image.lock
flock 9
if have_image "$IMAGE"; then
    echo "$IMAGE already present"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; docker rmi "$ROOTFS_TAG" >/dev/null 2>&1 || true' EXIT
start=$(date +%s)

echo "mmdebstrap $SUITE from $MIRROR"
# Snapshot-backed mirrors serve Release files past their Valid-Until date.
mmdebstrap --variant=minbase --include=python3,python3-venv \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    "$SUITE" "$tmp/base.tar" "$MIRROR"

docker import "$tmp/base.tar" "$ROOTFS_TAG" >/dev/null

# The legacy builder is what the daemon (20.10) and the docker SDK speak;
# host networking because there is no bridge.
DOCKER_BUILDKIT=0 docker build --network host -t "$IMAGE" - <<DOCKERFILE
FROM $ROOTFS_TAG
RUN python3 -m venv /opt/venv && /opt/venv/bin/python -m pip --version
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VIRTUAL_ENV=/opt/venv \
    LANG=C.UTF-8
CMD ["python"]
DOCKERFILE

docker run --rm --network host "$IMAGE" python --version
docker run --rm --network host "$IMAGE" python -m pip --version
echo "built $IMAGE in $(( $(date +%s) - start )) s"
