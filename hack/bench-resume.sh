#!/usr/bin/env bash
# The resume benchmark: an OEM-shaped bundle (the compass sample plus a SIZE_MB release
# image, default 1000 MB: a bundle of about 640 MB), installed into an isolated Docker Engine and a
# docker-registry on loopback. Measures a full install against the rerun after a
# kill -9 at 90% of it (hack/kill-sweep.sh, RUNS times, medians); with SWEEP=1 also
# the whole kill sweep (every step boundary and mid-step).
#
#   bash hack/bench-resume.sh                # as root; needs what hack/setup-host.sh installs
#   SIZE_MB=1000 RUNS=5 SWEEP=1 bash hack/bench-resume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-1000}
runs=${RUNS:-3}
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=${BENCH_DIR:-$PWD/target/bench-resume}
rm -rf "$work"
mkdir -p "$work/spec"
engine=$(mktemp -d /tmp/airbin-resume.XXXXXX)
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
rm -f "$work/spec/images/big.tar"
echo "bench-resume: bundle $(du -m "$bin" | cut -f1) MB; engine $DOCKER_HOST, registry $REGISTRY_ADDRESS"
cat >"$work/site.yaml" <<YAML
cluster_name: bench
management_nodes: [127.0.0.1]
registry_address: $REGISTRY_ADDRESS
registry_root: $work/registry/root
tools_dir: $work/bin
YAML
# Every install starts from an empty engine and registry root.
export RESET="docker rmi -f compass/big:2.7.3 compass/api:2.7.3 compass/worker:2.7.3; rm -rf '$work/registry/root/docker'"
KILL_AT=0.9 RUNS=$runs WORK=$work/sweep bash hack/kill-sweep.sh "$bin" --config "$work/site.yaml"
[ -z "${SWEEP:-}" ] || WORK=$work/sweep bash hack/kill-sweep.sh "$bin" --config "$work/site.yaml"
