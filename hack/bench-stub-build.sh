#!/usr/bin/env bash
# What carrying the arm64 stub costs a build: a cold `cargo build --workspace` (what the
# test suite builds first on a fresh clone) of this checkout against the same of BASE, a
# revision from before arm64 stubs (default 13100fb), side by side, RUNS times taking
# turns at going first; then the size of every stub.
#
#   bash hack/bench-stub-build.sh            # RUNS=1 BASE=13100fb
#
# Each build has its own empty target directory; crates come from cargo's local cache.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${BASE:-13100fb}
runs=${RUNS:-1}
work=$(mktemp -d /tmp/airbin-stub-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/base"
git archive "$base" | tar -x -C "$work/base"

cold_build() { # DIR TARGET_DIR -> seconds
    rm -rf "$2"
    local start end
    start=$(date +%s.%N)
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo build --workspace --locked -q)
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

new_s=() base_s=()
for run in $(seq "$runs"); do
    if [ $((run % 2)) = 1 ]; then
        new_s+=("$(cold_build "$PWD" "$work/t-new")"); base_s+=("$(cold_build "$work/base" "$work/t-base")")
    else
        base_s+=("$(cold_build "$work/base" "$work/t-base")"); new_s+=("$(cold_build "$PWD" "$work/t-new")")
    fi
    echo "run $run: this checkout ${new_s[-1]} s, $base ${base_s[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
new=$(median "${new_s[@]}") old=$(median "${base_s[@]}")
echo "cold build: $new s against $old s at $base: $(echo "scale=3; $new / $old" | bc)x, $(echo "$new - $old" | bc) s more"
for arch in amd64 arm64; do
    for triple_dir in "$work/t-new/stub/$arch"/*-musl; do
        runtime=$(stat -c %s "$triple_dir/stub/airbin-stub")
    done
    stub=$(stat -c %s "$work"/t-new/loader/$arch/*-musl/release/airbin-loader)
    echo "$arch stub: $stub bytes (its runtime $runtime bytes)"
done
