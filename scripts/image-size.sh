#!/usr/bin/env bash
# The size of the holdfast container image, measured on a machine with no container
# registry in reach: builds the runtime stage of deploy/Dockerfile with buildah, over a
# debian:bookworm-slim made here (debootstrap's minbase from the Debian mirror, with the
# official slim image's apt and dpkg settings), from a binary built on this (Debian 12)
# machine and stripped as the Dockerfile's build stage strips it. Prints the image's size
# unpacked and as a registry stores it (gzip layers), and checks that the binary runs in
# it as the non-root user.
#
#   scripts/image-size.sh [HOLDFAST_BINARY]   (default: $CARGO_TARGET_DIR/release/holdfast)
#
# Needs root (buildah, debootstrap; installed with apt-get when missing) and the Debian
# mirror. Not part of the test suite: it downloads about 30 MB and takes two minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=$(readlink -f "${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/holdfast}")
WORK=${IMAGE_WORK_DIR:-/var/tmp/holdfast-image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$tool" >/dev/null
done
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"

# debian:bookworm-slim: minbase, without documentation, manuals, locales and apt caches.
debootstrap --variant=minbase bookworm rootfs "$MIRROR" >debootstrap.log
cat >rootfs/etc/apt/apt.conf.d/docker-clean <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
mkdir -p rootfs/etc/dpkg/dpkg.cfg.d
cat >rootfs/etc/dpkg/dpkg.cfg.d/docker <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/var/cache/apt/*.bin rootfs/var/lib/apt/lists/* \
    rootfs/usr/share/doc/* rootfs/usr/share/man/* rootfs/usr/share/info/* rootfs/usr/share/locale/* \
    rootfs/var/log/*.log
tar -C rootfs -c . >base.tar
base=$(buildah from scratch)
buildah add "$base" base.tar / >/dev/null
buildah config --cmd bash "$base"
buildah commit -q "$base" docker.io/library/debian:bookworm-slim >/dev/null
buildah rm "$base" >/dev/null

# The Dockerfile's runtime stage, word for word, with the binary from the build context.
cp "$BIN" holdfast
strip --strip-all holdfast
sed -n '/^FROM debian:bookworm-slim/,$p' "$ROOT/deploy/Dockerfile" |
    sed 's|^COPY --from=build /out/holdfast |COPY holdfast |' >Containerfile
grep -q '^COPY holdfast ' Containerfile
buildah bud --format docker --isolation chroot --pull=never -q -f Containerfile -t localhost/holdfast:size . >/dev/null

check=$(buildah from localhost/holdfast:size)
buildah run --isolation chroot "$check" -- holdfast --version
buildah run --isolation chroot "$check" -- id -u | grep -qx 10001
buildah rm "$check" >/dev/null
buildah push -q localhost/holdfast:size "oci-archive:$WORK/holdfast.oci.tar:holdfast" >/dev/null
echo "stripped binary:     $(stat -c %s holdfast) bytes"
echo "base (bookworm-slim): $(buildah images --format '{{.Size}}' docker.io/library/debian:bookworm-slim)"
echo "image, unpacked:     $(buildah images --format '{{.Size}}' localhost/holdfast:size)"
echo "image, compressed:   $(stat -c %s "$WORK/holdfast.oci.tar") bytes (OCI archive, gzip layers)"
