#!/usr/bin/env bash
# Makes an OEM-shaped payload of about SIZE_MB in DIR, as a product release carries it,
# with its airbin spec (DIR/bundle.yaml) and a makeself install script (DIR/install.sh):
#
#   images/release.tar   50%  `docker save` of two images built here, layers of binaries
#                              (the host's libraries), text (logs, JSON) and random data
#   registry/pack.tar    35%  a registry image pack (hack/make-registry-pack.sh) of two more
#                              such images: gzip'd blobs between tar headers and JSON
#   bin/cadm              8%  an admin tool: a shell script with binaries appended
#   docs/, config.sample  7%  text
#
#   bash hack/make-oem-payload.sh SIZE_MB DIR        # needs an engine (DOCKER_HOST honoured)
#
# Leaves no image behind in the engine.
set -euo pipefail
size_mb=${1:?usage: make-oem-payload.sh SIZE_MB DIR}
dir=${2:?usage: make-oem-payload.sh SIZE_MB DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/images" "$dir/registry" "$dir/bin" "$dir/docs"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/airbin-oem.XXXXXX")
images="oem-bench/api:1 oem-bench/worker:1 oem-bench/pack-a:1 oem-bench/pack-b:1 oem-bench/base:1"
trap 'docker rmi -f $images >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT

# fill KIND BYTES FILE: binaries, text or random data. Each file's binaries start at
# another of the host's files (its name picks which): layers and tools do not repeat
# each other, as they do not in a real product.
fill() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys, zlib
kind, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(out, "wb") as f:
    written = 0
    if kind == "binary":
        paths = [os.path.join(d, n) for d in ("/usr/lib/x86_64-linux-gnu", "/usr/bin") for n in sorted(os.listdir(d))]
        paths = [p for p in paths if os.path.isfile(p) and not os.path.islink(p)]
        start = zlib.crc32(out.encode()) % len(paths)
        paths = paths[start:] + paths[:start]
        while written < size:
            for p in paths:
                if written >= size: break
                data = open(p, "rb").read()[: size - written]
                f.write(data); written += len(data)
    elif kind == "text":
        rng, n = random.Random(size), 0
        words = "request served node api worker cluster registry image layer timeout retry status ok".split()
        while written < size:
            line = (f'2026-11-22T05:{n % 60:02d}:{n % 59:02d}Z node-{n % 7} {rng.choice(words)}: '
                    f'{{"id": {n}, "ms": {rng.randrange(997)}, "path": "/v1/{rng.choice(words)}/{n % 113}", '
                    f'"status": {200 if n % 13 else 503}}}\n').encode()[: size - written]
            f.write(line); written += len(line); n += 1
    else:
        with open("/dev/urandom", "rb") as r:
            while written < size:
                chunk = r.read(min(1 << 20, size - written)); f.write(chunk); written += len(chunk)
PY
}

# image REF MB: an image on the shared base, with a text, a binary and a random layer.
mb=$((1 << 20))
image() {
    ctx=$scratch/ctx-${1//[:\/]/-}
    mkdir -p "$ctx"
    fill text $(($2 * mb * 3 / 10)) "$ctx/app.log"
    fill binary $(($2 * mb * 3 / 10)) "$ctx/app.bin"
    fill random $(($2 * mb * 4 / 10)) "$ctx/data.bin"
    printf 'FROM oem-bench/base:1\nCOPY app.log /var/log/app.log\nCOPY app.bin /opt/app/app.bin\nCOPY data.bin /opt/app/data.bin\n' >"$ctx/Dockerfile"
    # The legacy builder: BuildKit is not in Debian's docker.io. Its deprecation notice
    # is noise here; any other message is shown.
    DOCKER_BUILDKIT=0 docker build -q -t "$1" "$ctx" >/dev/null 2>"$scratch/build.err" || { cat "$scratch/build.err" >&2; exit 1; }
    rm -rf "$ctx"
}

echo "make-oem-payload: $size_mb MB into $dir"
mkdir -p "$scratch/base/bin" "$scratch/base/lib"
cp /bin/busybox "$scratch/base/bin/"
ln -s busybox "$scratch/base/bin/sh"
fill binary $((size_mb * mb / 50)) "$scratch/base/lib/libs.bin"
tar -C "$scratch/base" -c . | docker import - oem-bench/base:1 >/dev/null
rm -rf "$scratch/base"

# The base layer is ~2% of SIZE_MB, shared by all four images.
image oem-bench/api:1 $((size_mb * 30 / 100))
image oem-bench/worker:1 $((size_mb * 18 / 100))
docker save -o "$dir/images/release.tar" oem-bench/api:1 oem-bench/worker:1
docker rmi -f oem-bench/api:1 oem-bench/worker:1 >/dev/null
image oem-bench/pack-a:1 $((size_mb * 20 / 100))
image oem-bench/pack-b:1 $((size_mb * 13 / 100))
printf 'oem-bench/pack-a:1\noem-bench/pack-b:1\n' >"$scratch/pack.list"
bash "$here/make-registry-pack.sh" "$scratch/pack.list" "$dir/registry/pack.tar" >/dev/null

# The tool: a script that stops reading before the binaries appended to it.
printf '#!/bin/sh\n# cadm, the admin tool (benchmark stand-in)\necho "cadm: $*"\nexit 0\n' >"$dir/bin/cadm"
fill binary $((size_mb * mb * 8 / 100)) "$scratch/tool.bin"
cat "$scratch/tool.bin" >>"$dir/bin/cadm"
chmod 755 "$dir/bin/cadm"
fill text $((size_mb * mb * 6 / 100)) "$dir/docs/release-notes.txt"
printf 'cluster_name: bench\nmanagement_nodes: [127.0.0.1]\nregistry_root: /var/lib/docker-registry\n' >"$dir/config.sample"

cat >"$dir/bundle.yaml" <<'EOF'
name: oem-bench
version: "1"
members:
  - {name: release-images, kind: image, path: images/release.tar}
  - {name: registry-pack, kind: registry-pack, path: registry/pack.tar}
  - {name: cadm, kind: tool, path: bin/cadm}
  - {name: docs, kind: file, path: docs}
  - {name: config.sample, kind: config-sample, path: config.sample}
config:
  required: [registry_root]
steps:
  - {name: load release images, kind: load-images, member: release-images}
  - {name: restore registry pack, kind: restore-registry, member: registry-pack, root_from_config: registry_root}
  - {name: cadm install, kind: command, run: [cadm, install, --config, config]}
EOF
# What the same install is with makeself: its script runs in the extracted directory.
cat >"$dir/install.sh" <<'EOF'
#!/bin/sh
# makeself's side of the benchmark: the same three steps, by hand. $1: the registry root.
set -e
docker load -i images/release.tar >/dev/null
mkdir -p "$1"
tar -C "$1" -xf registry/pack.tar
./bin/cadm install --config config.sample >/dev/null
EOF
chmod 755 "$dir/install.sh"
du -sm "$dir" | awk '{print "make-oem-payload: " $1 " MB made"}'
