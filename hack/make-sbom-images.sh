#!/usr/bin/env bash
# Makes two images with real package databases, for the SBOM tests and figures, in the
# engine DOCKER_HOST names, and saves them to DIR/images.tar:
#
#   airbin-test/debian:12    a Debian bookworm minbase root (mmdebstrap from the host's
#                            apt sources), then `dpkg -i` of two packages made here, then
#                            `dpkg --purge` of one of them: three more layers
#   airbin-test/alpine:3.20  a busybox root with Alpine's os-release and installed
#                            database (no Alpine package source is reachable here, so
#                            the database is written in apk's format), then a layer that
#                            adds one package to it
#
#   bash hack/make-sbom-images.sh DIR
set -euo pipefail
dir=${1:?usage: make-sbom-images.sh DIR}
mkdir -p "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/airbin-sbom-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
sources=/etc/apt/sources.list.d/debian.sources
[ -e "$sources" ] || sources=/etc/apt/sources.list

# Debian: leave out docs and locales, which the package database still lists.
mmdebstrap --variant=minbase --quiet --dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' \
    bookworm "$work/debian.tar" "$sources"
docker import "$work/debian.tar" airbin-test/debian:base >/dev/null
for pkg in a:1.0 b:2.0; do
    name=airbin-extra-${pkg%%:*} version=${pkg#*:}
    mkdir -p "$work/$name/DEBIAN" "$work/$name/usr/share/$name"
    printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: airbin tests <tests@airbin.invalid>\nDescription: an airbin SBOM test package\n' \
        "$name" "$version" >"$work/$name/DEBIAN/control"
    echo "$name $version" >"$work/$name/usr/share/$name/README"
    dpkg-deb --root-owner-group --build "$work/$name" "$work/${name}_${version}_all.deb" >/dev/null
done
cat >"$work/Dockerfile.debian" <<'DOCKERFILE'
FROM airbin-test/debian:base
COPY airbin-extra-a_1.0_all.deb airbin-extra-b_2.0_all.deb /tmp/
RUN dpkg -i /tmp/airbin-extra-a_1.0_all.deb /tmp/airbin-extra-b_2.0_all.deb
RUN dpkg --purge airbin-extra-b && rm /tmp/*.deb
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q --network none -f "$work/Dockerfile.debian" -t airbin-test/debian:12 "$work" >/dev/null

# Alpine: apk's installed database, one paragraph a package.
root=$work/alpine
mkdir -p "$root/bin" "$root/etc" "$root/lib/apk/db" "$root/tmp"
cp "$(command -v busybox)" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
printf 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n' >"$root/etc/os-release"
apk_package() { printf 'C:Q1%s=\nP:%s\nV:%s\nA:x86_64\nS:100\nI:200\nT:%s\nL:%s\no:%s\nm:airbin tests\n\n' "$(echo "$1" | sha1sum | cut -c1-26)" "$1" "$2" "$1" "$3" "$1"; }
{
    apk_package alpine-baselayout-data 3.6.5-r0 GPL-2.0-only
    apk_package musl 1.2.5-r0 MIT
    apk_package busybox 1.36.1-r29 GPL-2.0-only
    apk_package zlib 1.3.1-r1 Zlib
    apk_package ca-certificates-bundle 20240705-r0 'MPL-2.0 AND MIT'
} >"$root/lib/apk/db/installed"
tar -C "$root" -c . | docker import - airbin-test/alpine:base >/dev/null
cat >"$work/Dockerfile.alpine" <<'DOCKERFILE'
FROM airbin-test/alpine:base
RUN printf 'P:libcurl\nV:8.9.1-r1\nA:x86_64\nL:curl\no:curl\n\n' >> /lib/apk/db/installed
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q --network none -f "$work/Dockerfile.alpine" -t airbin-test/alpine:3.20 "$work" >/dev/null
docker save -o "$dir/images.tar" airbin-test/debian:12 airbin-test/alpine:3.20
docker rmi airbin-test/debian:base airbin-test/alpine:base >/dev/null 2>&1 || true
