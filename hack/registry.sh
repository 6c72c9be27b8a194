#!/usr/bin/env bash
# Starts or stops a throwaway Debian docker-registry serving ROOT on a free loopback port
# (or on HOST:PORT).
#
#   eval "$(bash hack/registry.sh start DIR ROOT [HOST:PORT])"   # prints: export REGISTRY_ADDRESS=HOST:PORT
#   bash hack/registry.sh stop DIR
set -euo pipefail
cmd=${1:?usage: registry.sh start DIR ROOT | stop DIR}
dir=${2:?usage: registry.sh start DIR ROOT | stop DIR}
case $cmd in
start)
    root=${3:?usage: registry.sh start DIR ROOT}
    command -v docker-registry >/dev/null || { echo "registry.sh: docker-registry is missing: run bash hack/setup-host.sh" >&2; exit 1; }
    mkdir -p "$dir" "$root"
    if [ -n "${4:-}" ]; then
        host=${4%:*} port=${4##*:}
    else
        host=127.0.0.1
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    cat >"$dir/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $root}
http:
  addr: $host:$port
YAML
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/registry.pid"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            echo "export REGISTRY_ADDRESS=$host:$port"
            exit 0
        fi
        sleep 0.1
    done
    echo "registry.sh: docker-registry did not start; its log:" >&2
    tail -20 "$dir/registry.log" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/registry.pid" ] || exit 0
    pid=$(cat "$dir/registry.pid")
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/registry.pid"
    ;;
*)
    echo "usage: registry.sh start DIR ROOT | stop DIR" >&2
    exit 2
    ;;
esac
