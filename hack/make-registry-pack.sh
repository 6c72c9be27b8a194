#!/usr/bin/env bash
# Makes a registry image pack: a tarball of a docker registry's storage tree
# (docker/registry/v2/...), which `airbin build` takes as a registry-pack member.
#
#   bash hack/make-registry-pack.sh LIST OUT.tar [SRC]
#   bash hack/make-registry-pack.sh --dir LIST OUTDIR [SRC]   # the tree itself: a delta
#                                                             # (airbin build --base) needs it
#
# LIST: one image reference a line (repo:tag; blank lines and # comments skipped).
# SRC:  where the images come from: `docker-daemon` (the default: the local engine,
#       DOCKER_HOST honoured) or a registry host[:port] (plain http on loopback,
#       TLS elsewhere; set SRC_TLS_VERIFY=false for a self-signed one).
# Starts a throwaway Debian `docker-registry` on a free loopback port, copies every
# listed image into it with skopeo, stops it and packs its tree. Needs docker-registry
# and skopeo (bash hack/setup-host.sh).
set -euo pipefail
as_dir=false
if [ "${1:-}" = --dir ]; then
    as_dir=true
    shift
fi
list=${1:?usage: make-registry-pack.sh [--dir] LIST OUT.tar|OUTDIR [SRC]}
out=${2:?usage: make-registry-pack.sh [--dir] LIST OUT.tar|OUTDIR [SRC]}
src=${3:-docker-daemon}
for tool in docker-registry skopeo python3; do
    command -v "$tool" >/dev/null || { echo "make-registry-pack: $tool is missing: run bash hack/setup-host.sh" >&2; exit 1; }
done

work=$(mktemp -d)
registry_pid=
cleanup() {
    [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
    [ -z "$registry_pid" ] || wait "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/root"
cat >"$work/config.yml" <<CONF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/root}
http:
  addr: 127.0.0.1:$port
CONF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
    sleep 0.2
done

failed=0
while IFS= read -r image || [ -n "$image" ]; do
    image=${image%%#*}
    image=$(echo "$image" | tr -d '[:space:]')
    [ -n "$image" ] || continue
    if [ "$src" = docker-daemon ]; then
        daemon_host=${DOCKER_HOST:-unix:///var/run/docker.sock}
        from=(--src-daemon-host "$daemon_host" "docker-daemon:$image")
    else
        from=("--src-tls-verify=${SRC_TLS_VERIFY:-true}" "docker://$src/$image")
        case $src in 127.*|localhost*) from[0]=--src-tls-verify=false ;; esac
    fi
    echo "make-registry-pack: $image"
    if ! skopeo copy -q --dest-tls-verify=false "${from[@]}" "docker://127.0.0.1:$port/$image"; then
        echo "make-registry-pack: copying $image failed" >&2
        failed=1
    fi
done <"$list"
[ "$failed" = 0 ] || exit 1

kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true; registry_pid=
# Only what serving needs: upload sessions are left out.
find "$work/root" -type d -name _uploads -prune -exec rm -rf {} +
mkdir -p "$(dirname "$out")"
if [ "$as_dir" = true ]; then
    [ ! -e "$out" ] || { echo "make-registry-pack: $out exists; give a new directory" >&2; exit 1; }
    mkdir "$out.partial"
    cp -a "$work/root/docker" "$out.partial/"
    mv "$out.partial" "$out"
else
    tar -C "$work/root" --sort=name --owner=0 --group=0 --numeric-owner -cf "$out.partial" docker
    mv "$out.partial" "$out"
fi
echo "make-registry-pack: wrote $out"
