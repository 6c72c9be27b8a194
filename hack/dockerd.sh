#!/usr/bin/env bash
# Starts or stops an isolated Docker Engine for tests and benchmarks: its own data root,
# exec root, socket and pidfile, vfs storage, no iptables and no bridge, so that it
# neither needs nor touches the host's engine.
#
#   eval "$(bash hack/dockerd.sh start DIR)"   # prints: export DOCKER_HOST=unix://DIR/docker.sock
#   bash hack/dockerd.sh stop DIR
#
# DIR should be short: unix socket paths are limited to 108 bytes.
set -euo pipefail
cmd=${1:?usage: dockerd.sh start|stop DIR}
dir=${2:?usage: dockerd.sh start|stop DIR}

case $cmd in
start)
    command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd is missing: run bash hack/setup-host.sh" >&2; exit 1; }
    mkdir -p "$dir"
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" \
        --pidfile "$dir/docker.pid" --storage-driver=vfs --iptables=false --bridge=none \
        >"$dir/dockerd.log" 2>&1 &
    echo $! >"$dir/dockerd.launcher.pid"
    for _ in $(seq 1 120); do
        if docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then
            echo "export DOCKER_HOST=unix://$dir/docker.sock"
            exit 0
        fi
        sleep 0.5
    done
    echo "dockerd.sh: the engine did not come up within 60 s; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
    ;;
stop)
    [ -d "$dir" ] || exit 0
    pid=$(cat "$dir/docker.pid" 2>/dev/null || cat "$dir/dockerd.launcher.pid" 2>/dev/null || echo "")
    [ -n "$pid" ] || { rm -rf "$dir"; exit 0; }
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    # vfs layers are plain directories, but the engine binds its data root onto itself:
    # an engine that was killed leaves that mount behind.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" || true; done
    rm -rf "$dir"
    ;;
*)
    echo "usage: dockerd.sh start|stop DIR" >&2
    exit 2
    ;;
esac
