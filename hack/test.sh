#!/usr/bin/env bash
# Runs the whole test suite: rustfmt and clippy, unit tests, and the end-to-end tests that build real
# bundles and run them under bash, dash and busybox sh against a real Docker Engine,
# containerd, podman and Debian's docker-registry.
#
#   bash hack/test.sh [cargo test args...]      # as root on Debian 12; CI runs this
#
# Installs what is missing (hack/setup-host.sh), starts an isolated Docker Engine for
# the run (hack/dockerd.sh) and stops it afterwards. Needs root: the tests mount tmpfs
# in private mount namespaces (noexec /tmp, a full disk) and run as other users.
set -eu
cd "$(dirname "$0")/.."
bash hack/setup-host.sh

# Short: the engine's sockets live under it (unix socket paths are limited).
engine_dir=$(mktemp -d /tmp/airbin-test.XXXXXX)
trap 'bash hack/dockerd.sh stop "$engine_dir"' EXIT
eval "$(bash hack/dockerd.sh start "$engine_dir")"
export AIRBIN_TEST_CONTAINERD="$engine_dir/exec/containerd/containerd.sock"
echo "test: Docker Engine at $DOCKER_HOST"

# Style and lints first: they fail in seconds, the suite takes a minute.
cargo fmt --check
cargo fmt --check --manifest-path loader/Cargo.toml
cargo clippy --workspace --all-targets --locked -q -- -D warnings
# The stub's loader is its own workspace, built for musl only (builder/build.rs packs the
# runtime it includes into target/loader while the clippy above builds the builder).
AIRBIN_PACKED_STUB="$PWD/target/loader/airbin-stub.zst" \
    cargo clippy --manifest-path loader/Cargo.toml --target x86_64-unknown-linux-musl --target-dir target/loader --locked -q -- -D warnings
cargo test --workspace --locked "$@"
