#!/usr/bin/env bash
# The size of a delta bundle against the full one, for a realistic upgrade: a release of
# IMAGES images of LAYERS layers each (LAYER_MIB MiB of incompressible data a layer), where
# 2.0 changes CHANGED layers of one image and adds a tag. Both 2.0 bundles are built side
# by side from the same registry root; 1.0 is the base of the delta.
#
#   bash hack/bench-delta.sh            # IMAGES=4 LAYERS=8 LAYER_MIB=4 CHANGED=2
#
# Needs docker-registry and skopeo (hack/setup-host.sh), and a built airbin (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${IMAGES:-4} LAYERS=${LAYERS:-8} LAYER_MIB=${LAYER_MIB:-4} CHANGED=${CHANGED:-2}
airbin=${AIRBIN:-target/release/airbin}
[ -x "$airbin" ] || cargo build --release --locked -p airbin
work=$(mktemp -d /var/tmp/airbin-bench-delta.XXXXXX)
trap 'bash hack/registry.sh stop "$work/reg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# A docker-archive of one image: each layer a tar of LAYER_MIB MiB from /dev/urandom,
# made once per name, so that an unchanged layer is byte for byte the same in 1.0 and 2.0.
layer() { # NAME -> $work/layers/NAME.tar
    [ -f "$work/layers/$1.tar" ] && return
    mkdir -p "$work/layers/$1"
    head -c "$((LAYER_MIB << 20))" /dev/urandom >"$work/layers/$1/data"
    tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$work/layers/$1" -cf "$work/layers/$1.tar" data
}
archive() { # OUT TAG LAYER_NAME...
    out=$1 tag=$2; shift 2
    dir=$(mktemp -d "$work/archive.XXXXXX")
    diff_ids= layers=
    for name in "$@"; do
        layer "$name"
        sum=$(sha256sum "$work/layers/$name.tar" | cut -d' ' -f1)
        mkdir -p "$dir/$sum" && cp "$work/layers/$name.tar" "$dir/$sum/layer.tar"
        diff_ids="$diff_ids${diff_ids:+,}\"sha256:$sum\"" layers="$layers${layers:+,}\"$sum/layer.tar\""
    done
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "$diff_ids" >"$dir/config.json"
    config=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
    mv "$dir/config.json" "$dir/$config.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]' "$config" "$tag" "$layers" >"$dir/manifest.json"
    tar -C "$dir" -cf "$out" .
    rm -rf "$dir"
}
push() { # ARCHIVE TAG
    skopeo copy --quiet --dest-tls-verify=false "docker-archive:$1" "docker://$REGISTRY_ADDRESS/$2"
}
spec() { # VERSION
    mkdir -p "$work/spec-$1"
    printf 'name: delta-bench\nversion: "%s"\nmembers:\n  - {name: registry, kind: registry-pack, path: %s}\nsteps:\n  - {kind: restore-registry, member: registry, root_from_config: registry_root}\n' \
        "$1" "$work/root" >"$work/spec-$1/bundle.yaml"
    echo "$work/spec-$1"
}

eval "$(bash hack/registry.sh start "$work/reg" "$work/root")"
for i in $(seq "$IMAGES"); do
    names=$(for l in $(seq "$LAYERS"); do echo "img$i-layer$l"; done)
    archive "$work/a.tar" "product/image$i:1.0" $names
    push "$work/a.tar" "product/image$i:1.0"
done
"$airbin" build -q "$(spec 1.0)" -o "$work/v1"
# 2.0: image 1 with CHANGED layers rebuilt (the top ones, as a rebuild changes them).
names=$(for l in $(seq "$LAYERS"); do if [ "$l" -gt "$((LAYERS - CHANGED))" ]; then echo "img1-layer$l-v2"; else echo "img1-layer$l"; fi; done)
archive "$work/a.tar" "product/image1:2.0" $names
push "$work/a.tar" "product/image1:2.0"
"$airbin" build -q "$(spec 2.0)" -o "$work/full"
"$airbin" build -q "$(spec 2.0)" -o "$work/delta" --base "$work/v1/delta-bench-1.0-amd64.bin"

size() { stat -c %s "$1"; }
v1=$(size "$work/v1/delta-bench-1.0-amd64.bin")
full=$(size "$work/full/delta-bench-2.0-amd64.bin")
delta=$(size "$work/delta/delta-bench-2.0-amd64.bin")
echo "release: $IMAGES images x $LAYERS layers x $LAYER_MIB MiB; 2.0 changes $CHANGED layers of one image"
printf '1.0 full bundle:    %12d bytes\n2.0 full bundle:    %12d bytes\n2.0 delta bundle:   %12d bytes (--base 1.0)\n' "$v1" "$full" "$delta"
awk -v d="$delta" -v f="$full" 'BEGIN { printf "delta / full:       %12.3f (%.1fx smaller)\n", d / f, f / d }'
"$airbin" diff "$work/v1/delta-bench-1.0-amd64.bin" "$work/delta/delta-bench-2.0-amd64.bin"
