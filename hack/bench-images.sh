#!/usr/bin/env bash
# Image inputs: a registry pack of N images from a loopback docker-registry, made
#   - the scripted way (what hack/make-registry-pack.sh did before `airbin fetch`: a
#     throwaway docker-registry on a free port, `skopeo copy` of every image into it,
#     stop, tar of its storage tree), then `airbin build` of a spec with that `path:`;
#   - by `airbin build` of a spec listing the images (`images_file:` + `from:`), with a
#     cold blob cache;
#   - the same build again with the cache warm (the lock pins the digests).
# Also the pack alone: the scripted way against `airbin fetch --registry-pack`.
# Times are medians of RUNS runs, side by side in one run; ratios against the scripted way.
#
#   bash hack/bench-images.sh                # needs docker-registry and skopeo (setup-host.sh)
#   N=20 LAYER_KB=2048 RUNS=3 bash hack/bench-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-20}
layer_kb=${LAYER_KB:-2048}
runs=${RUNS:-3}
for tool in docker-registry skopeo python3; do
    command -v "$tool" >/dev/null || { echo "bench-images: $tool is missing: run bash hack/setup-host.sh" >&2; exit 1; }
done
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=${BENCH_DIR:-$PWD/target/bench-images}
rm -rf "$work"
mkdir -p "$work/spec-listed" "$work/spec-path" "$work/archives"
cleanup() {
    bash hack/registry.sh stop "$work/source" 2>/dev/null || true
    bash hack/registry.sh stop "$work/scratch-registry" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# N images: a shared 1 MiB base layer and one LAYER_KB layer of their own, as
# docker-archives, pushed into the source registry.
python3 - "$work/archives" "$n" "$layer_kb" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def layer(name, size, seed):
    # Random bytes: a layer as incompressible as real binaries are, near enough.
    data = os.urandom(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
base = layer("base.dat", 1 << 20, "base")
for i in range(n):
    own = layer(f"own{i}.dat", kb * 1024, f"own{i}")
    tars = [base, own]
    ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ids}, "config": {}}).encode()
    chex = hashlib.sha256(config).hexdigest()
    paths = [f"{h[7:]}/layer.tar" for h in ids]
    manifest = json.dumps([{"Config": f"{chex}.json", "RepoTags": [f"bench/app{i}:1.0"], "Layers": paths}]).encode()
    with tarfile.open(os.path.join(out, f"app{i}.tar"), "w", format=tarfile.GNU_FORMAT) as t:
        for name, data in [("manifest.json", manifest), (f"{chex}.json", config)] + list(zip(paths, tars)):
            info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
PY
eval "$(bash hack/registry.sh start "$work/source" "$work/source/root")"
source_address=$REGISTRY_ADDRESS
: >"$work/images.txt"
for i in $(seq 0 $((n - 1))); do
    skopeo copy -q --dest-tls-verify=false "docker-archive:$work/archives/app$i.tar" "docker://$source_address/bench/app$i:1.0"
    echo "bench/app$i:1.0" >>"$work/images.txt"
done
source_mb=$(du -sm "$work/source/root" | cut -f1)

# The scripted way: hack/make-registry-pack.sh as it was (a registry, skopeo, tar).
scripted_pack() { # OUT.tar
    local dir=$work/scratch-registry
    rm -rf "$dir"
    eval "$(bash hack/registry.sh start "$dir" "$dir/root")"
    while IFS= read -r image; do
        skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$source_address/$image" "docker://$REGISTRY_ADDRESS/$image"
    done <"$work/images.txt"
    bash hack/registry.sh stop "$dir"
    find "$dir/root" -type d -name _uploads -prune -exec rm -rf {} +
    tar -C "$dir/root" --sort=name --owner=0 --group=0 --numeric-owner -cf "$1" docker
}

cat >"$work/spec-listed/bundle.yaml" <<YAML
name: bench-images
version: '1.0'
members:
  - {name: pack, kind: registry-pack, images_file: ../images.txt, from: '$source_address'}
YAML
cat >"$work/spec-path/bundle.yaml" <<YAML
name: bench-images
version: '1.0'
members:
  - {name: pack, kind: registry-pack, path: pack.tar}
YAML

timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "bench-images: $* failed" >&2; "$@" >&2 || true; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(round($end - $start, 3))"
}
median() { python3 -c "import statistics, sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 3))" "$@"; }
ratio() { python3 -c "import sys; print(round(float(sys.argv[1]) / float(sys.argv[2]), 2))" "$1" "$2"; }

scripted_build() { scripted_pack "$work/spec-path/pack.tar" && "$airbin" -q build "$work/spec-path" -o "$work/dist-path"; }
cold_build() { rm -rf "$work/cache" "$work/spec-listed/bundle.lock"; AIRBIN_CACHE_DIR=$work/cache "$airbin" -q build "$work/spec-listed" -o "$work/dist-listed"; }
warm_build() { AIRBIN_CACHE_DIR=$work/cache "$airbin" -q build "$work/spec-listed" -o "$work/dist-listed"; }
fetch_pack() { rm -rf "$work/cache-fetch"; AIRBIN_CACHE_DIR=$work/cache-fetch "$airbin" -q fetch --images-file "$work/images.txt" --from "$source_address" --registry-pack "$work/fetched.tar"; }

declare -A t
for _ in $(seq 1 "$runs"); do
    t[pack_scripted]+=" $(timed scripted_pack "$work/scripted.tar")"
    t[pack_fetch]+=" $(timed fetch_pack)"
    t[build_scripted]+=" $(timed scripted_build)"
    t[build_cold]+=" $(timed cold_build)"
    t[build_warm]+=" $(timed warm_build)"
done
for k in pack_scripted pack_fetch build_scripted build_cold build_warm; do
    # shellcheck disable=SC2086
    t[$k]=$(median ${t[$k]})
done
echo "bench-images: $n images (a shared 1 MiB layer, $layer_kb KiB each of their own; $source_mb MB in the source registry), medians of $runs runs"
printf '%-58s %8s %8s\n' "what" "seconds" "ratio"
printf '%-58s %8s %8s\n' "pack: registry + skopeo + tar (the old script)" "${t[pack_scripted]}" "1.00"
printf '%-58s %8s %8s\n' "pack: airbin fetch --registry-pack (cold cache)" "${t[pack_fetch]}" "$(ratio "${t[pack_fetch]}" "${t[pack_scripted]}")"
printf '%-58s %8s %8s\n' "bundle: old script, then airbin build (path:)" "${t[build_scripted]}" "1.00"
printf '%-58s %8s %8s\n' "bundle: airbin build (images_file + from:, cold cache)" "${t[build_cold]}" "$(ratio "${t[build_cold]}" "${t[build_scripted]}")"
printf '%-58s %8s %8s\n' "bundle: airbin build again (lock + warm cache)" "${t[build_warm]}" "$(ratio "${t[build_warm]}" "${t[build_scripted]}")"
