#!/usr/bin/env bash
# Makes the image inputs of samples/compass from busybox-static, with no registry and
# no network: tiny images built by `docker import`, a release image tarball made by
# `docker save`, and a registry image pack made by hack/make-registry-pack.sh.
# The results are committed, so building the sample needs no Docker; run this only
# to change them.
#
#   bash hack/make-sample-inputs.sh      # needs a Docker engine (DOCKER_HOST honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
sample=samples/compass
[ -x /bin/busybox ] || { echo "make-sample-inputs: busybox-static is missing: run bash hack/setup-host.sh" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One image a component: busybox plus a file naming the component, so that every
# image has its own layer and ID.
make_image() { # ref component
    rootfs="$work/$2"
    mkdir -p "$rootfs/bin" "$rootfs/etc/compass"
    cp /bin/busybox "$rootfs/bin/busybox"
    ln -sf busybox "$rootfs/bin/sh"
    echo "compass $2 2.7.3" >"$rootfs/etc/compass/component"
    tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . |
        docker import -c 'CMD ["/bin/sh"]' -m "compass $2" - "$1" >/dev/null
    echo "make-sample-inputs: image $1"
}

make_image compass/api:2.7.3 api
make_image compass/worker:2.7.3 worker
docker save -o "$sample/images/release-images.tar" compass/api:2.7.3 compass/worker:2.7.3
echo "make-sample-inputs: wrote $sample/images/release-images.tar"

make_image compass/agent:2.7.3 agent
make_image compass/busybox:1.35 busybox
bash hack/make-registry-pack.sh "$sample/registry-images.txt" "$sample/registry/registry-pack.tar"
