#!/usr/bin/env bash
# Test nodes on one machine, real enough to install on: each node is a network namespace
# with its own address on a bridge, its own mount and UTS namespaces (its own
# /var/lib/airbin, /var/lib/docker, /run, /var/tmp, /srv, /root/.ssh and host name), its
# own Docker Engine on the default socket, and Debian's sshd on port 22. Every node's
# root can ssh into every other node with the cluster's key (key-based, known host keys),
# as the fan-out (`install --all-nodes`) and Ansible expect.
#
#   bash hack/qa-nodes.sh up N                 # N nodes: node1 10.201.C.11, node2 .12, ...
#   bash hack/qa-nodes.sh addr K               # node K's address
#   bash hack/qa-nodes.sh exec K CMD...        # run CMD on node K (as its sshd would)
#   bash hack/qa-nodes.sh registry K           # start docker-registry on node K, ADDR:5000, root /srv/registry
#   bash hack/qa-nodes.sh engine K stop|start  # stop or start node K's Docker Engine
#   bash hack/qa-nodes.sh run BIN [ARGS...]    # copy BIN (and `config` beside it) to node 1,
#                                              # then `sh BIN install --all-nodes ARGS` there
#   bash hack/qa-nodes.sh ssh K [CMD...]       # ssh into node K from this host
#   bash hack/qa-nodes.sh reset K              # node K back to clean: its processes stopped,
#                                              # its state, images, /srv and /var/tmp wiped, started again
#   bash hack/qa-nodes.sh down                 # stop every process of the nodes, remove them
#
# Several clusters can live side by side (the tests run a few at once): -c C (1..200,
# default 1) picks the cluster; its nodes are netns airbin-qaC-nK on bridge abrC, subnet
# 10.201.C.0/24, files under /tmp/airbin-qa-C (short: unix socket paths are limited).
# Needs root, iproute2, openssh-server and docker.io: bash hack/setup-host.sh.
set -euo pipefail

cluster=1
if [ "${1:-}" = -c ]; then
    cluster=${2:?-c needs a cluster number}
    shift 2
fi
case $cluster in '' | *[!0-9]*) echo "qa-nodes: -c takes a number 1..200" >&2; exit 2 ;; esac
[ "$cluster" -ge 1 ] && [ "$cluster" -le 200 ] || { echo "qa-nodes: -c takes a number 1..200" >&2; exit 2; }
base=/tmp/airbin-qa-$cluster
here=$(cd "$(dirname "$0")" && pwd)
bridge=abr$cluster
subnet=10.201.$cluster
usage="usage: qa-nodes.sh [-c C] up N | down | addr K | exec K CMD... | ssh K [CMD...] | registry K | engine K stop|start | run BIN [ARGS...] | reset K"

node_dir() { echo "$base/node$1"; }
node_ns() { echo "airbin-qa$cluster-n$1"; }
node_addr() { echo "$subnet.$((10 + $1))"; }
nodes() { ls -d "$base"/node* 2>/dev/null | sed 's|.*/node||' | sort -n; }
init_pid() { cat "$(node_dir "$1")/init.pid"; }

need() {
    for tool in ip nsenter unshare ssh ssh-keygen /usr/sbin/sshd dockerd; do
        command -v "$tool" >/dev/null 2>&1 || { echo "qa-nodes: $tool is missing: run bash hack/setup-host.sh" >&2; exit 1; }
    done
    [ "$(id -u)" = 0 ] || { echo "qa-nodes: needs root (network namespaces, bind mounts)" >&2; exit 1; }
}

# What runs as each node's first process, inside its own mount and UTS namespaces: the
# node's private directories bound over the host's, then its engine and its sshd.
node_init() {
    local k=$1 d
    d=$(node_dir "$k")
    hostname "node$k"
    mount --make-rprivate /
    mount --bind "$d/state" /var/lib/airbin
    mount --bind "$d/docker" /var/lib/docker
    mount --bind "$d/tmp" /var/tmp
    mount --bind "$d/srv" /srv
    mount --bind "$d/ssh" /root/.ssh
    mount -t tmpfs -o mode=755 tmpfs /run
    mkdir -p /run/sshd
    ip link set lo up
    start_engine "$k"
    /usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" &
    echo $$ >"$d/init.pid"
    wait
}

up() {
    local n=${1:?$usage} k d ns addr
    need
    mkdir -p "$base" /var/lib/airbin /var/lib/docker /root/.ssh
    [ -f "$base/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "airbin-qa-$cluster" -f "$base/id_ed25519"
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add "$bridge" type bridge
        ip addr add "$subnet.1/24" dev "$bridge"
        ip link set "$bridge" up
    fi
    : >"$base/known_hosts"
    for k in $(seq 1 "$n"); do
        d=$(node_dir "$k")
        mkdir -p "$d"/state "$d"/docker "$d"/tmp "$d"/srv "$d"/ssh
        [ -f "$d/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C "node$k" -f "$d/host_key"
        echo "$(node_addr "$k") $(cut -d' ' -f1-2 "$d/host_key.pub")" >>"$base/known_hosts"
    done
    for k in $(seq 1 "$n"); do
        d=$(node_dir "$k")
        ns=$(node_ns "$k")
        addr=$(node_addr "$k")
        if [ -f "$d/init.pid" ] && kill -0 "$(init_pid "$k")" 2>/dev/null; then
            continue
        fi
        cp "$base/id_ed25519" "$base/id_ed25519.pub" "$base/known_hosts" "$d/ssh/"
        cp "$base/id_ed25519.pub" "$d/ssh/authorized_keys"
        chmod 700 "$d/ssh"
        cat >"$d/sshd_config" <<EOF
ListenAddress $addr
HostKey $d/host_key
PidFile $d/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile /root/.ssh/authorized_keys
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
        ip netns add "$ns" 2>/dev/null || true
        if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
            ip link add "q$cluster-$k" type veth peer name eth0 netns "$ns"
            ip link set "q$cluster-$k" master "$bridge" up
            ip -n "$ns" addr add "$addr/24" dev eth0
            ip -n "$ns" link set eth0 up
            ip -n "$ns" route add default via "$subnet.1"
        fi
        rm -f "$d/init.pid"
        # nsenter, not `ip netns exec`: that one mounts a fresh /sys and so hides the
        # cgroup hierarchies the engine needs.
        unshare --mount --uts nsenter --net="/run/netns/$ns" bash "$here/qa-nodes.sh" -c "$cluster" __init "$k" </dev/null >"$d/init.log" 2>&1 &
    done
    for k in $(seq 1 "$n"); do
        d=$(node_dir "$k")
        for _ in $(seq 1 240); do
            if [ -f "$d/init.pid" ] && node_exec "$k" docker version >/dev/null 2>&1 \
                && ssh_node "$k" true >/dev/null 2>&1; then
                continue 2
            fi
            sleep 0.25
        done
        echo "qa-nodes: node$k did not come up within 60 s; its logs:" >&2
        tail -5 "$d/init.log" "$d/dockerd.log" "$d/sshd.log" >&2 2>/dev/null || true
        exit 1
    done
    for k in $(seq 1 "$n"); do echo "node$k $(node_addr "$k")"; done
}

# The node's Docker Engine, on the default socket; run inside the node.
start_engine() {
    local d
    d=$(node_dir "$1")
    dockerd -H unix:///var/run/docker.sock --pidfile "$d/dockerd.pid" --storage-driver=vfs \
        --iptables=false --bridge=none --insecure-registry "$subnet.0/24" >>"$d/dockerd.log" 2>&1 &
}

# Stops or starts node K's engine (for tests of a node whose engine is down).
engine() {
    local k=${1:?$usage} d pid
    d=$(node_dir "$k")
    case ${2:-} in
    stop)
        pid=$(cat "$d/dockerd.pid" 2>/dev/null || true)
        [ -n "$pid" ] || return 0
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
        echo "qa-nodes: node$k's engine did not stop" >&2
        exit 1
        ;;
    start)
        node_exec "$k" bash "$here/qa-nodes.sh" -c "$cluster" __engine "$k"
        for _ in $(seq 1 240); do
            node_exec "$k" docker version >/dev/null 2>&1 && return 0
            sleep 0.25
        done
        echo "qa-nodes: node$k's engine did not start; its log:" >&2
        tail -5 "$d/dockerd.log" >&2
        exit 1
        ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
}

node_exec() {
    local k=$1
    shift
    nsenter -t "$(init_pid "$k")" -n -m -u -- "$@"
}

ssh_node() {
    local k=$1
    shift
    ssh -q -i "$base/id_ed25519" -o BatchMode=yes -o UserKnownHostsFile="$base/known_hosts" -o ConnectTimeout=5 \
        "root@$(node_addr "$k")" "$@"
}

registry() {
    local k=${1:?$usage} out
    # Inside the node: its own /srv, its own address.
    out=$(node_exec "$k" bash "$here/registry.sh" start "$(node_dir "$k")/registry" /srv/registry "$(node_addr "$k"):5000") \
        || { echo "qa-nodes: docker-registry did not start on node$k" >&2; exit 1; }
    echo "${out#export REGISTRY_ADDRESS=}"
}

run() {
    local bin=${1:?$usage} dir name
    shift
    name=$(basename "$bin")
    dir=$(cd "$(dirname "$bin")" && pwd)
    ssh_node 1 mkdir -p /var/tmp/qa
    ssh_node 1 "cat > /var/tmp/qa/$name" <"$bin"
    if [ -f "$dir/config" ]; then
        ssh_node 1 "cat > /var/tmp/qa/config" <"$dir/config"
    fi
    ssh_node 1 sh "/var/tmp/qa/$name" install --all-nodes "$@"
}

# Node K as it was after `up`: what runs in it stopped, what it wrote wiped (the lab's
# ssh backend uses this as its "revert to the clean snapshot"), then started again.
reset() {
    local k=${1:?$usage} d n
    k=${k#node}
    d=$(node_dir "$k")
    [ -d "$d" ] || { echo "qa-nodes: no node$k in cluster $cluster" >&2; exit 1; }
    stop_node "$k"
    # Its first process may linger as a zombie (nobody reaps it here): not alive.
    rm -rf "$d"/state "$d"/docker "$d"/tmp "$d"/srv "$d"/registry "$d"/init.pid "$d"/dockerd.pid "$d"/sshd.pid
    n=$(nodes | tail -1)
    up "$n" >/dev/null
}

# Every process of node K: its engine (given time to unmount), then the rest.
stop_node() {
    local k=$1 d ns pid
    d=$(node_dir "$k")
    ns=$(node_ns "$k")
    for pidfile in "$d/registry/registry.pid" "$d/sshd.pid" "$d/dockerd.pid"; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    # dockerd removes its pidfile as it exits: gone between the test and the read is
    # no error (under set -e it ended `down` there, leaving the later nodes running).
    pid=$(cat "$d/dockerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    if ip netns list | grep -w "$ns" >/dev/null; then
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
    fi
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
}

down() {
    local k ns
    for k in $(nodes); do
        ns=$(node_ns "$k")
        # Everything that runs in the node: its engine, sshd, registry, and what sessions left.
        stop_node "$k"
        ip netns del "$ns" 2>/dev/null || true
        ip link del "q$cluster-$k" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    sleep 0.2
    # vfs layers are plain directories; the node's mounts went with its mount namespace.
    rm -rf "$base"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
up) up "$@" ;;
down) down ;;
addr) node_addr "${1:?$usage}" ;;
exec) k=${1:?$usage}; shift; node_exec "$k" "$@" ;;
ssh) k=${1:?$usage}; shift; ssh_node "$k" "$@" ;;
registry) registry "$@" ;;
engine) engine "$@" ;;
__engine) start_engine "$1" ;;
run) run "$@" ;;
reset) reset "$@" ;;
__init) node_init "$1" ;;
*) echo "$usage" >&2; exit 2 ;;
esac
