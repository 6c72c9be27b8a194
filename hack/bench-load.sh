#!/usr/bin/env bash
# Benchmark of image loading: a SIZE_MB (default 500) image, loaded with `docker load -i`
# from its `docker save` tarball and through a .bin that carries the same tarball
# (verify the whole bundle, decompress, stream into the engine, check the IDs), side by
# side, alternating, RUNS times (default 7: single runs vary by 20% and more on these
# shared machines). Reports the medians and their ratio; the goal is the .bin within
# 1.05x of docker load.
#
#   bash hack/bench-load.sh            # uses DOCKER_HOST if an engine answers there,
#                                      # else starts an isolated one (hack/dockerd.sh)
#   COMPRESSION=none bash hack/bench-load.sh   # the image member stored as it is
#   IMAGES=oem SIZE_MB=1024 bash hack/bench-load.sh   # the OEM payload's image archive
#                                      # (hack/make-oem-payload.sh: two images, layers of
#                                      # text, executables and random data)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-500}
compression=${COMPRESSION:-auto}
refs=airbin-bench/app:1
[ "${IMAGES:-}" != oem ] || refs="oem-bench/api:1 oem-bench/worker:1"
runs=${RUNS:-7}
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin

work=${BENCH_DIR:-$PWD/target/bench-load}
rm -rf "$work"
mkdir -p "$work"
engine_dir=
cleanup() {
    docker rmi -f $refs >/dev/null 2>&1 || true
    [ -z "$engine_dir" ] || bash hack/dockerd.sh stop "$engine_dir"
    rm -rf "$work"
}
trap cleanup EXIT
if ! docker version >/dev/null 2>&1; then
    engine_dir=$(mktemp -d /tmp/airbin-bench.XXXXXX)
    eval "$(bash hack/dockerd.sh start "$engine_dir")"
fi
echo "bench-load: engine $(docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-default}, storage $(docker info --format '{{.Driver}}')"

mkdir -p "$work/spec"
if [ "${IMAGES:-}" = oem ]; then
    bash hack/make-oem-payload.sh "$size_mb" "$work/oem"
    mv "$work/oem/images/release.tar" "$work/spec/image.tar"
    rm -rf "$work/oem"
else
    bash hack/make-bench-image.sh "$size_mb" "$work/image.tar" airbin-bench/app:1
    mv "$work/image.tar" "$work/spec/image.tar"
fi
cat >"$work/spec/bundle.yaml" <<EOF
name: bench-load
version: "1"
members:
  - {name: image, kind: image, path: image.tar, compression: $compression}
steps:
  - {kind: load-images, member: image}
EOF
"$airbin" -q build "$work/spec" -o "$work/dist"
bin=$work/dist/bench-load-1-amd64.bin
echo "bench-load: image tarball $(du -m "$work/spec/image.tar" | cut -f1) MB, bundle $(du -m "$bin" | cut -f1) MB (compression: $compression)"

timed() { # prints wall seconds of "$@"
    sync
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.3f}')"
}
: >"$work/docker.txt"
: >"$work/bin.txt"
for run in $(seq 1 "$runs"); do
    docker rmi -f $refs >/dev/null 2>&1 || true
    t=$(timed docker load -i "$work/spec/image.tar"); echo "$t" >>"$work/docker.txt"
    echo "bench-load: run $run: docker load -i      $t s"
    docker rmi -f $refs >/dev/null
    t=$(AIRBIN_STATE_DIR="$work/state" timed sh "$bin" install --quiet --yes --force); echo "$t" >>"$work/bin.txt"
    echo "bench-load: run $run: sh bundle.bin install $t s"
done
python3 - "$work/docker.txt" "$work/bin.txt" <<'PY'
import statistics, sys
docker = statistics.median(float(x) for x in open(sys.argv[1]))
bundle = statistics.median(float(x) for x in open(sys.argv[2]))
print(f"bench-load: median docker load -i {docker:.2f} s, .bin install {bundle:.2f} s, ratio {bundle / docker:.3f}x (goal <= 1.05x)")
PY
