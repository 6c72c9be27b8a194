#!/usr/bin/env bash
# Makes a registry image pack: a registry's storage tree (docker/registry/v2/...), or a
# tarball of it, which `airbin build` takes as a registry-pack member's `path`.
# A thin wrapper of `airbin fetch`: no registry process, no skopeo, no free port.
# (A spec can list the images itself: `images:` + `from:`, see docs/SPEC.md; then
# `airbin build` makes the pack and pins it in bundle.lock.)
#
#   bash hack/make-registry-pack.sh LIST OUT.tar [SRC]
#   bash hack/make-registry-pack.sh --dir LIST OUTDIR [SRC]   # the tree itself: a delta
#                                                             # (airbin build --base) needs it
#
# LIST: one image reference a line (repo:tag; blank lines and # comments skipped).
# SRC:  where the images come from: `docker-daemon` (the default: the local engine,
#       DOCKER_HOST honoured), a registry host[:port] (plain http on loopback, TLS
#       elsewhere; SRC_CA=FILE for a site CA; credentials from docker login), or oci:DIR.
# AIRBIN: the airbin to run (default: airbin on PATH, else this checkout's, via cargo).
set -euo pipefail
as_dir=false
if [ "${1:-}" = --dir ]; then
    as_dir=true
    shift
fi
list=${1:?usage: make-registry-pack.sh [--dir] LIST OUT.tar|OUTDIR [SRC]}
out=${2:?usage: make-registry-pack.sh [--dir] LIST OUT.tar|OUTDIR [SRC]}
src=${3:-docker-daemon}
case $out in
*.tar) [ "$as_dir" = false ] || { echo "make-registry-pack: --dir writes a directory; $out names a tarball" >&2; exit 2; } ;;
*) [ "$as_dir" = true ] || { echo "make-registry-pack: $out: name the tarball OUT.tar, or give --dir for a directory" >&2; exit 2; } ;;
esac
if [ -n "${AIRBIN:-}" ]; then
    airbin=("$AIRBIN")
elif command -v airbin >/dev/null; then
    airbin=(airbin)
else
    airbin=(cargo run -q --release --manifest-path "$(dirname "$0")/../Cargo.toml" -p airbin --)
fi
args=(fetch --images-file "$list" --from "$src" --registry-pack "$out")
[ -z "${SRC_CA:-}" ] || args+=(--ca "$SRC_CA")
"${airbin[@]}" "${args[@]}" >/dev/null
echo "make-registry-pack: wrote $out"
