#!/usr/bin/env bash
# Runs the whole test suite: rustfmt and clippy, unit tests, and the end-to-end tests that build real
# bundles and run them under bash, dash and busybox sh against a real Docker Engine,
# containerd, podman and Debian's docker-registry, and arm64 bundles on an arm64 host
# made of qemu-user-static (binfmt_misc) and arm64 busybox.
#
#   bash hack/test.sh [cargo test args...]      # as root on Debian 12; CI runs this
#   AIRBIN_TEST_SKIP=docker,arm64 bash hack/test.sh   # skip the tests that need these
#
# A test that cannot run (no Docker, not root, a tool missing) fails unless
# AIRBIN_TEST_SKIP names what it needs; the run ends with how many were skipped.
#
# Installs what is missing (hack/setup-host.sh), starts an isolated Docker Engine for
# the run (hack/dockerd.sh) and stops it afterwards. Needs root: the tests mount tmpfs
# in private mount namespaces (noexec /tmp, a full disk) and run as other users.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-host.sh

# Short: the engine's sockets live under it (unix socket paths are limited).
engine_dir=$(mktemp -d /tmp/airbin-test.XXXXXX)
trap 'bash hack/dockerd.sh stop "$engine_dir"' EXIT
eval "$(bash hack/dockerd.sh start "$engine_dir")"
export AIRBIN_TEST_CONTAINERD="$engine_dir/exec/containerd/containerd.sock"
echo "test: Docker Engine at $DOCKER_HOST"

# Style, shape and lints first: they fail in seconds, the suite takes minutes.
cargo fmt --check
cargo fmt --check --manifest-path loader/Cargo.toml
python3 hack/shape.py
cargo clippy --workspace --all-targets --locked -q -- -D warnings
# The stub's loader is its own workspace, built for musl only, once per arch
# (builder/build.rs packs the runtime it includes into target/loader/<arch> while the
# clippy above builds the builder). Linting compiles zstd-sys's C, so it needs the C compiler.
target_root=${CARGO_TARGET_DIR:-$PWD/target}
for pair in amd64:x86_64-unknown-linux-musl arm64:aarch64-unknown-linux-musl; do
    arch=${pair%%:*} triple=${pair#*:}
    AIRBIN_PACKED_STUB="$target_root/loader/$arch/airbin-stub.zst" CC_aarch64_unknown_linux_musl=aarch64-linux-musl-gcc \
        cargo clippy --manifest-path loader/Cargo.toml --target "$triple" --target-dir "$target_root/loader/$arch" --locked -q -- -D warnings
done
# Every spec a test builds is held to airbin's own schema too (assemble/check/schema.rs).
export AIRBIN_SPEC_SCHEMA_CHECK=1
skipped_dir="$target_root/tmp/airbin-skipped"
rm -rf "$skipped_dir"
mkdir -p "$skipped_dir"
status=0
cargo test --workspace --locked "$@" || status=$?
skipped=$(find "$skipped_dir" -type f 2>/dev/null | wc -l)
if [ "$skipped" -gt 0 ]; then
    echo "test: $skipped test(s) SKIPPED (AIRBIN_TEST_SKIP=${AIRBIN_TEST_SKIP:-}):"
    cat "$skipped_dir"/* | sort | sed 's/^/  /'
else
    echo "test: 0 tests skipped"
fi
exit "$status"
