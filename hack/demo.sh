#!/usr/bin/env bash
# The main job, end to end: builds `airbin` (with its static stub) and the compass sample
# bundle, starts an isolated Docker Engine and a docker-registry on loopback, writes the
# product's config, installs the bundle for real (images loaded, registry pack restored
# and served, cadm installed and run), shows `status` and `status --verify` (the host
# checked against the install), runs the bundle again (nothing is redone), shows what
# `uninstall` would remove, and stops what it started.
#
#   bash hack/demo.sh            # as root on Debian 12; everything lands under demo/
#
# Installs what it needs first (hack/setup-host.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-host.sh
cargo build --release --locked -p airbin
airbin=target/release/airbin
"$airbin" --version

rm -rf demo
mkdir -p demo
"$airbin" build samples/compass -o demo/dist
bin=demo/dist/compass-component-v2.7.3-amd64.bin
(cd demo/dist && sha256sum -c compass-component-v2.7.3-amd64.bin.sha256)

# Short: unix socket paths are limited to 108 bytes.
engine=$(mktemp -d /tmp/airbin-demo.XXXXXX)
cleanup() {
    bash hack/registry.sh stop "$PWD/demo/registry" || true
    bash hack/dockerd.sh stop "$engine" || true
}
trap cleanup EXIT
eval "$(bash hack/dockerd.sh start "$engine")"
eval "$(bash hack/registry.sh start "$PWD/demo/registry" "$PWD/demo/registry/root")"
echo "demo: Docker Engine at $DOCKER_HOST, docker-registry at $REGISTRY_ADDRESS"

# The field engineer's part: the config from the sample, edited for this host.
sh "$bin" extract config.sample --target demo/sample
# A single management node: this host, by its loopback address.
sed -e "s|^management_nodes:.*|management_nodes: [127.0.0.1]|" \
    -e "s|^registry_address:.*|registry_address: $REGISTRY_ADDRESS|" \
    -e "s|^registry_root:.*|registry_root: $PWD/demo/registry/root|" \
    -e "s|^tools_dir:.*|tools_dir: $PWD/demo/bin|" demo/sample/config.sample > demo/dist/config
export AIRBIN_STATE_DIR=$PWD/demo/state
# The sample's registry runs as this user, not as docker-registry.
export CADM_INSTALL_MARK=$PWD/demo/compass-installed

echo "== sh $bin plan"
sh "$bin" plan
echo "== sh $bin   (install)"
sh "$bin"
echo "== sh $bin status"
sh "$bin" status
echo "== sh $bin status --verify   (images, registry blobs and files against the install)"
sh "$bin" status --verify
echo "== docker pull $REGISTRY_ADDRESS/compass/agent:2.7.3 (from the restored pack)"
docker pull -q "$REGISTRY_ADDRESS/compass/agent:2.7.3"
docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}'
echo "== sh $bin   (again: nothing is redone)"
sh "$bin"
cat demo/compass-installed
echo "== sh $bin uninstall --dry-run   (what an uninstall would run and remove)"
sh "$bin" uninstall --dry-run
echo "demo: done. Logs and journal: $AIRBIN_STATE_DIR/compass-component/"
