#!/usr/bin/env bash
# Installs what building airbin and running its whole test suite need on a fresh
# Debian 12 host: the musl target and musl-tools (the static stub), Docker Engine (with
# containerd and ctr), podman, Debian's docker-registry, skopeo, busybox-static and dash
# (the shells, engines and registry the end-to-end tests run bundles against),
# minisign (signed bundles are checked with the standard tool too), openssh-server,
# ansible-core and iproute2 (the multi-node tests' nodes, fan-out and Ansible role), and
# for the arm64 stub: the aarch64 musl target, Debian's cross gcc with musl-dev:arm64
# (musl's headers and the aarch64-linux-musl-gcc wrapper, for the C parts of zstd and
# liblzma), qemu-user-static (the tests run arm64 bundles through binfmt_misc) and
# arm64 busybox (the tests' arm64 host userland, unpacked under /usr/local/lib/airbin-test).
#
#   bash hack/setup-host.sh            # needs root (apt-get); idempotent
#
# Docker's service is not started by apt (no systemd here): a policy-rc.d blocks it
# during the install; the tests start their own isolated daemon.
set -euo pipefail

need_apt=()
command -v musl-gcc >/dev/null 2>&1 || need_apt+=(musl-tools)
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
dpkg -s busybox-static >/dev/null 2>&1 || need_apt+=(busybox-static)
command -v dash >/dev/null 2>&1 || need_apt+=(dash)
# hack/shape.py checks the code's shape (file and function sizes, import cycles).
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# minisign: the signed-bundle tests check that the standard tool accepts airbin's .minisig.
command -v minisign >/dev/null 2>&1 || need_apt+=(minisign)
# The multi-node tests: each test node runs Debian's sshd; the fan-out uses OpenSSH's
# client; the Ansible role is tested with ansible-core; nodes are network namespaces.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ansible-playbook >/dev/null 2>&1 || need_apt+=(ansible-core)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# Cross-building the arm64 stub, and running arm64 programs in the tests.
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-musl-gcc >/dev/null 2>&1 || need_apt+=(musl-dev:arm64)
[ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] || need_apt+=(qemu-user-static)
arm64_busybox=/usr/local/lib/airbin-test/arm64/busybox

if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-host: missing Debian packages: ${need_apt[*]}; run this script as root or: apt-get install -y ${need_apt[*]}" >&2
        exit 1
    fi
    echo "setup-host: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # musl-dev:arm64 comes from the arm64 half of the same archive (multiarch).
    dpkg --print-foreign-architectures | grep -x arm64 >/dev/null || dpkg --add-architecture arm64
    apt-get update -qq
    created_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
    [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x "$arm64_busybox" ]; then
    # Not installed: busybox-static:arm64 would replace the host's own /bin/busybox.
    if [ "$(id -u)" != 0 ]; then
        echo "setup-host: missing the tests' arm64 busybox; run this script as root" >&2
        exit 1
    fi
    echo "setup-host: unpacking busybox-static:arm64 into ${arm64_busybox%/*}"
    dpkg --print-foreign-architectures | grep -x arm64 >/dev/null || { dpkg --add-architecture arm64 && apt-get update -qq; }
    download=$(mktemp -d)
    (cd "$download" && apt-get download -qq busybox-static:arm64 2>/dev/null && dpkg-deb -x busybox-static_*_arm64.deb root)
    mkdir -p "${arm64_busybox%/*}"
    install -m 755 "$download/root/bin/busybox" "$arm64_busybox"
    rm -rf "$download"
fi

for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! rustup target list --installed 2>/dev/null | grep -x "$target" >/dev/null; then
        echo "setup-host: adding the Rust target $target"
        rustup target add "$target"
    fi
done
echo "setup-host: ready"
