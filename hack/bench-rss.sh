#!/usr/bin/env bash
# The stub's memory at sizes where the full OEM benchmark does not fit on this disk (its
# installs need the engine's copies of the images too): makes an OEM-shaped payload of
# SIZE_MB (hack/make-oem-payload.sh), builds it, and runs `check` and `extract` of the
# bundle under /usr/bin/time, against `sha256sum` of the same bundle. Prints wall time and
# peak RSS of each; needs about 2.6x SIZE_MB of free disk.
#
#   bash hack/bench-rss.sh 16384
#
# Runs its own Docker Engine (hack/dockerd.sh) to make the payload's images. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:?usage: bench-rss.sh SIZE_MB}
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=${BENCH_DIR:-$PWD/target/bench-rss}
rm -rf "$work"
mkdir -p "$work"
engine=$(mktemp -d /tmp/airbin-bench-rss.XXXXXX)
trap 'bash hack/dockerd.sh stop "$engine"; rm -rf "$work"' EXIT
eval "$(bash hack/dockerd.sh start "$engine")"

bash hack/make-oem-payload.sh "$size_mb" "$work/payload"
# The engine is needed only to make the images.
bash hack/dockerd.sh stop "$engine"
measure() { # LABEL COMMAND...
    label=$1
    shift
    sync
    /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null 2>"$work/err.out" || { cat "$work/err.out" >&2; exit 1; }
    read -r secs rss <"$work/time.out"
    printf 'bench-rss: %-16s %8.2f s  %8.1f MiB peak RSS\n' "$label" "$secs" "$(echo "$rss / 1024" | bc -l)"
}
measure build "$airbin" -q build "$work/payload" -o "$work/dist"
bin=$(ls "$work"/dist/*.bin)
rm -rf "$work/payload"
echo "bench-rss: bundle $(du -m "$bin" | cut -f1) MB"
measure sha256sum sha256sum "$bin"
measure check sh "$bin" check --quiet
measure extract sh "$bin" extract --quiet --target "$work/out"
