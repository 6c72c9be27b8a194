#!/usr/bin/env bash
# Benchmark of image loading: a SIZE_MB (default 500) image, loaded with `docker load -i`
# from its `docker save` tarball and through a .bin that carries the same tarball
# (verify the whole bundle, decompress, stream into the engine, check the IDs), side by
# side, alternating, RUNS times (default 3). Reports the medians and their ratio; the
# goal is the .bin within 1.15x of docker load.
#
#   bash hack/bench-load.sh            # uses DOCKER_HOST if an engine answers there,
#                                      # else starts an isolated one (hack/dockerd.sh)
#   COMPRESSION=none bash hack/bench-load.sh   # the image member stored as it is
set -eu
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-500}
compression=${COMPRESSION:-auto}
runs=${RUNS:-3}
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin

work=${BENCH_DIR:-$PWD/target/bench-load}
rm -rf "$work"
mkdir -p "$work/rootfs/bin" "$work/rootfs/data"
engine_dir=
cleanup() {
    docker rmi -f airbin-bench/app:1 >/dev/null 2>&1 || true
    [ -z "$engine_dir" ] || bash hack/dockerd.sh stop "$engine_dir"
    rm -rf "$work"
}
trap cleanup EXIT
if ! docker version >/dev/null 2>&1; then
    engine_dir=$(mktemp -d /tmp/airbin-bench.XXXXXX)
    eval "$(bash hack/dockerd.sh start "$engine_dir")"
fi
echo "bench-load: engine $(docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-default}, storage $(docker info --format '{{.Driver}}')"

# A rootfs like a real image's: half executables and libraries, half data that does not compress.
cp /bin/busybox "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/sh"
python3 - "$work/rootfs/data" "$size_mb" <<'PY'
import os, sys
out, size = sys.argv[1], int(sys.argv[2]) << 20
half, written, n = size // 2, 0, 0
for d in ("/usr/lib/x86_64-linux-gnu", "/usr/bin"):
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if written >= half: break
        if os.path.isfile(path) and not os.path.islink(path):
            data = open(path, "rb").read()[: half - written]
            open(os.path.join(out, f"lib{n}"), "wb").write(data); written += len(data); n += 1
with open(os.path.join(out, "blob.dat"), "wb") as f, open("/dev/urandom", "rb") as r:
    for _ in range((size - written) >> 20):
        f.write(r.read(1 << 20))
PY
tar -C "$work/rootfs" -c . | docker import - airbin-bench/app:1 >/dev/null
docker save -o "$work/image.tar" airbin-bench/app:1
docker rmi -f airbin-bench/app:1 >/dev/null
rm -rf "$work/rootfs"
mkdir -p "$work/spec"
mv "$work/image.tar" "$work/spec/image.tar"
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
    docker rmi -f airbin-bench/app:1 >/dev/null 2>&1 || true
    t=$(timed docker load -i "$work/spec/image.tar"); echo "$t" >>"$work/docker.txt"
    echo "bench-load: run $run: docker load -i      $t s"
    docker rmi -f airbin-bench/app:1 >/dev/null
    t=$(timed sh "$bin" install --quiet --yes --target "$work/state"); echo "$t" >>"$work/bin.txt"
    echo "bench-load: run $run: sh bundle.bin install $t s"
done
python3 - "$work/docker.txt" "$work/bin.txt" <<'PY'
import statistics, sys
docker = statistics.median(float(x) for x in open(sys.argv[1]))
bundle = statistics.median(float(x) for x in open(sys.argv[2]))
print(f"bench-load: median docker load -i {docker:.2f} s, .bin install {bundle:.2f} s, ratio {bundle / docker:.3f}x (goal <= 1.15x)")
PY
