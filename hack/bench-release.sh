#!/usr/bin/env bash
# Release engineering's figures, on the OEM-shaped payload (hack/make-oem-payload.sh,
# SIZE_MB, default 1024), side by side and alternating, RUNS times (default 3), medians:
#
#   sbom    airbin build with the SBOM (CycloneDX + SPDX: every layer of the image
#           archive and the registry pack read for package databases) against
#           airbin build --no-sbom
#   split   sh X.bin install of the bundle split into parts (--split-size, default 256M)
#           against the same bundle unsplit, both into a fresh engine and registry root
#
#   bash hack/bench-release.sh [sbom|split|all]
#
# Runs its own Docker Engine (hack/dockerd.sh). Not a test: read the ratios, not the
# seconds. Writes target/bench-release/SIZE_MB.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
split_size=${SPLIT_SIZE:-256M}
results=$PWD/target/bench-release
mkdir -p "$results"
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=$(mktemp -d /var/tmp/airbin-bench-release.XXXXXX)
engine=$(mktemp -d /tmp/airbin-bench-release.XXXXXX)
cleanup() { bash hack/dockerd.sh stop "$engine" >/dev/null 2>&1 || true; rm -rf "$work" "$engine"; }
trap cleanup EXIT
eval "$(bash hack/dockerd.sh start "$engine")"
payload=$results/payload-$size_mb
[ -f "$payload/bundle.yaml" ] || bash hack/make-oem-payload.sh "$size_mb" "$payload"
out=$results/$size_mb.txt
: >"$out"

# timed LABEL COMMAND...: appends "LABEL seconds" to $out.
timed() {
    label=$1
    shift
    sync
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    echo "$label $secs" >>"$out"
    printf 'bench-release: %-16s %8.2f s\n' "$label" "$secs"
}
median() { awk -v l="$1" '$1 == l { print $2 }' "$out" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

if [ "$what" = sbom ] || [ "$what" = all ]; then
    for _ in $(seq 1 "$runs"); do
        rm -rf "$work/dist"
        timed build-no-sbom "$airbin" build "$payload" -o "$work/dist" --no-sbom
        rm -rf "$work/dist"
        timed build-sbom "$airbin" build "$payload" -o "$work/dist" --sbom spdx
    done
    "$airbin" sbom "$work"/dist/*.bin | python3 -c 'import json,sys; d=json.load(sys.stdin); print("bench-release: the SBOM lists", sum(1 for c in d["components"] if c["type"]=="container"), "images")'
    with=$(median build-sbom) without=$(median build-no-sbom)
    printf 'bench-release: build with the SBOM %.2f s, without %.2f s: %.3fx\n' "$with" "$without" "$(echo "$with / $without" | bc -l)"
fi

if [ "$what" = split ] || [ "$what" = all ]; then
    rm -rf "$work/whole" "$work/parts"
    "$airbin" build "$payload" -o "$work/whole" -q
    "$airbin" build "$payload" -o "$work/parts" -q --split-size "$split_size"
    whole=$(ls "$work"/whole/*.bin) parts=$(ls "$work"/parts/*.bin)
    printf 'bench-release: %s parts of at most %s\n' "$(ls "$work"/parts/*.bin* | grep -vc sha256)" "$split_size"
    printf 'registry_root: %s\n' "$work/root" >"$work/site.yaml"
    install() {
        docker rmi -f oem-bench/api:1 oem-bench/worker:1 >/dev/null 2>&1 || true
        rm -rf "$work/root" "$work/state"
        AIRBIN_STATE_DIR=$work/state timed "$1" sh "$2" install --quiet --yes --config "$work/site.yaml"
    }
    for _ in $(seq 1 "$runs"); do
        install install-whole "$whole"
        install install-split "$parts"
    done
    split=$(median install-split) unsplit=$(median install-whole)
    printf 'bench-release: install split %.2f s, unsplit %.2f s: %.3fx\n' "$split" "$unsplit" "$(echo "$split / $unsplit" | bc -l)"
fi
