#!/usr/bin/env bash
# Installs what building airbin and running its whole test suite need on a fresh
# Debian 12 host: the musl target and musl-tools (the static stub), Docker Engine (with
# containerd and ctr), podman, Debian's docker-registry, skopeo, busybox-static and dash
# (the shells, engines and registry the end-to-end tests run bundles against),
# minisign (signed bundles are checked with the standard tool too), openssh-server,
# ansible-core and iproute2 (the multi-node tests' nodes, fan-out and Ansible role),
# qemu, mmdebstrap, chromium and junitparser (`airbin lab`'s VMs and reports), and
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
# The benchmarks time the controller's CPU with GNU time.
[ -x /usr/bin/time ] || need_apt+=(time)
# `airbin lab`: the qemu backend's VMs (qemu-system-x86, qemu-img), its base image
# (mmdebstrap, mkfs.ext4), and the report read back as its consumers read it (headless
# chromium for the HTML page, junitparser for the JUnit XML).
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_apt+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need_apt+=(qemu-utils)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
[ -x /usr/sbin/mkfs.ext4 ] || need_apt+=(e2fsprogs)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# Debian's python3 (not a pyenv shim earlier on PATH) is where Debian's modules land.
/usr/bin/python3 -c 'import junitparser' >/dev/null 2>&1 || need_apt+=(python3-junitparser)
# Cross-building the arm64 stub, and running arm64 programs in the tests.
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-musl-gcc >/dev/null 2>&1 || need_apt+=(musl-dev:arm64)
[ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] || need_apt+=(qemu-user-static)
arm64_busybox=/usr/local/lib/airbin-test/arm64/busybox
# The SBOM tests' images: a Debian root (mmdebstrap, above) and packages made with
# dpkg-deb; their validators live in a venv of Debian's python3.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# Split bundles are tested on a real FAT32 file system (a loop image).
command -v mkfs.vfat >/dev/null 2>&1 || need_apt+=(dosfstools)
# ... mounted by the kernel's vfat, or where the kernel has none, by fusefat (FUSE).
command -v fusefat >/dev/null 2>&1 || need_apt+=(fusefat)

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
# The Ansible collection's checks: ansible-test sanity (and ansible-lint) from PyPI, in a
# venv of Debian's python3 (ansible-test wants a python it can make venvs of). ansible-test
# bootstraps pip in each of its venvs with a script from ci-files.testing.ansible.com,
# which machines that reach only the package registries cannot fetch: a stand-in in its
# cache takes pip from the interpreter's own ensurepip, then the version asked for from PyPI.
lint=/opt/airbin-lint
if [ ! -x "$lint/bin/ansible-test" ]; then
    echo "setup-host: making $lint (ansible-lint, ansible-core's ansible-test) from PyPI"
    /usr/bin/python3 -m venv "$lint"
    "$lint/bin/pip" install -q ansible-lint
fi
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" "$lint"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)
bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ -n "$pip_version" ] && [ ! -f "$bootstrap" ]; then
    mkdir -p "${bootstrap%/*}"
    cat >"$bootstrap" <<'EOF_PIP'
# Stands in for get-pip.py (see hack/setup-host.sh): pip from ensurepip, then from PyPI.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
EOF_PIP
fi

# The SBOM tests validate with the reference libraries of both formats, from PyPI.
sbom=/opt/airbin-sbom
if ! "$sbom/bin/python" -c 'import cyclonedx.validation.json, spdx_tools' 2>/dev/null; then
    echo "setup-host: making $sbom (cyclonedx-python-lib, spdx-tools) from PyPI"
    /usr/bin/python3 -m venv "$sbom"
    "$sbom/bin/pip" install -q 'cyclonedx-python-lib[json-validation]==11.*' 'spdx-tools==0.8.*'
fi

echo "setup-host: ready"
