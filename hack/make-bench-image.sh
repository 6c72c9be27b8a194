#!/usr/bin/env bash
# Makes a SIZE_MB image shaped like a real one (half executables and libraries, half data
# that does not compress) and saves it with `docker save` to OUT.tar, as REF. Needs an
# engine at DOCKER_HOST (or the default socket); leaves no image behind.
#
#   bash hack/make-bench-image.sh 500 out.tar [airbin-bench/app:1]
set -euo pipefail
size_mb=${1:?usage: make-bench-image.sh SIZE_MB OUT.tar [REF]}
out=${2:?usage: make-bench-image.sh SIZE_MB OUT.tar [REF]}
ref=${3:-airbin-bench/app:1}
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/airbin-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/data"
cp /bin/busybox "$rootfs/bin/"
ln -s busybox "$rootfs/bin/sh"
python3 - "$rootfs/data" "$size_mb" <<'PY'
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
tar -C "$rootfs" -c . | docker import - "$ref" >/dev/null
docker save -o "$out" "$ref"
docker rmi -f "$ref" >/dev/null
