#!/usr/bin/env bash
# The main job, end to end: builds `airbin` (with its static stub), builds the compass
# sample bundle from samples/compass, then runs it as a field engineer would:
# info, check, and extract into a scratch directory.
#
#   bash hack/demo.sh            # results in dist/ and demo-extract/
#
# Needs no Docker: the sample's image inputs are committed. Installs the musl target
# and Debian packages it needs through hack/setup-host.sh (as root).
set -eu
cd "$(dirname "$0")/.."
bash hack/setup-host.sh
cargo build --release --locked -p airbin
airbin=target/release/airbin
"$airbin" --version

"$airbin" build samples/compass -o dist
bin=dist/compass-component-v2.7.3-amd64.bin
(cd dist && sha256sum -c compass-component-v2.7.3-amd64.bin.sha256)

echo "== sh $bin info"
sh "$bin" info
echo "== sh $bin check"
sh "$bin" check
echo "== sh $bin extract --target demo-extract"
rm -rf demo-extract
sh "$bin" extract --target demo-extract
ls -l demo-extract
echo "demo: done. To install on a host with Docker and a registry: cp demo-extract/config.sample dist/config,"
echo "      edit it (registry_root, registry_address), then: sudo sh $bin"
