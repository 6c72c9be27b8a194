#!/usr/bin/env bash
# The day-two benchmark: an OEM-shaped bundle (the compass sample plus a SIZE_MB release
# image, default 500 MB), installed into an isolated Docker Engine and a docker-registry
# on loopback. Times, RUNS times (medians), each against the full install on a clean
# host: a rerun (nothing to do), `status --verify` (the host checked against the
# install) and `uninstall` (the host as it was before).
#
#   bash hack/bench-daytwo.sh                # as root; needs what hack/setup-host.sh installs
#   SIZE_MB=500 RUNS=3 bash hack/bench-daytwo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-500}
runs=${RUNS:-3}
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=${BENCH_DIR:-$PWD/target/bench-daytwo}
rm -rf "$work"
mkdir -p "$work/spec"
engine=$(mktemp -d /tmp/airbin-daytwo.XXXXXX)
cleanup() {
    bash hack/registry.sh stop "$work/registry" || true
    bash hack/dockerd.sh stop "$engine" || true
    rm -rf "$work"
}
trap cleanup EXIT
eval "$(bash hack/dockerd.sh start "$engine")"
eval "$(bash hack/registry.sh start "$work/registry" "$work/registry/root")"

cp -r samples/compass/. "$work/spec/"
bash hack/make-bench-image.sh "$size_mb" "$work/spec/images/big.tar" compass/big:2.7.3
python3 - "$work/spec/bundle.yaml" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("members:\n", "members:\n  - name: big-image\n    kind: image\n    path: images/big.tar\n", 1)
text = text.replace("steps:\n", "steps:\n  - name: load the big image\n    kind: load-images\n    member: big-image\n", 1)
open(path, "w").write(text)
PY
"$airbin" -q build "$work/spec" -o "$work/dist"
bin=$work/dist/compass-component-v2.7.3-amd64.bin
cat > "$work/config" <<EOF
cluster_name: bench
management_nodes: [127.0.0.1]
registry_address: $REGISTRY_ADDRESS
registry_root: $work/registry/root
tools_dir: $work/bin
EOF
export AIRBIN_STATE_DIR=$work/state

# Seconds one command takes.
timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "bench-daytwo: $* failed" >&2; "$@" >&2 || true; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(round($end - $start, 3))"
}

median() { python3 -c "import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

installs=() reruns=() verifies=() uninstalls=()
for run in $(seq 1 "$runs"); do
    installs+=("$(timed sh "$bin" --yes --config "$work/config")")
    reruns+=("$(timed sh "$bin" --yes --config "$work/config")")
    verifies+=("$(timed sh "$bin" status --verify)")
    uninstalls+=("$(timed sh "$bin" uninstall --config "$work/config")")
    echo "run $run: install ${installs[-1]} s, rerun ${reruns[-1]} s, status --verify ${verifies[-1]} s, uninstall ${uninstalls[-1]} s" >&2
done
install=$(median "${installs[@]}")
python3 - "$install" "$(median "${reruns[@]}")" "$(median "${verifies[@]}")" "$(median "${uninstalls[@]}")" "$size_mb" "$runs" <<'PY'
import sys
install, rerun, verify, uninstall = (float(x) for x in sys.argv[1:5])
print(f"compass + a {sys.argv[5]} MB image, medians of {sys.argv[6]} runs:")
print(f"  install          {install:7.2f} s")
for name, t in (("rerun (nothing)", rerun), ("status --verify", verify), ("uninstall", uninstall)):
    print(f"  {name:16} {t:7.2f} s  {t / install:.3f}x the install")
PY
