#!/usr/bin/env bash
# The dual-node benchmark: the wall time of installing one bundle on a dual pair with one
# command (`install --all-nodes` from the primary: the copy to the secondary, every
# node's preflight and both parts included) against installing the same bundle on a
# single node, on test nodes (hack/qa-nodes.sh: own engine, own sshd). The bundle is the
# compass sample plus a SIZE_MB release image (default 300) that every node loads.
# Alternating runs, RUNS of each (default 3), medians; every run starts from a clean node
# (no state, no images, no restored pack, no copy).
#
#   bash hack/bench-nodes.sh                 # as root; needs what hack/setup-host.sh installs
#   SIZE_MB=1000 RUNS=5 bash hack/bench-nodes.sh
#
# All three nodes share this machine's cores: the pair's two installs run side by side
# on them, where real nodes would each have their own.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-300}
runs=${RUNS:-3}
cluster=${QA_CLUSTER:-40}
qa() { bash hack/qa-nodes.sh -c "$cluster" "$@"; }
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=${BENCH_DIR:-$PWD/target/bench-nodes}
rm -rf "$work"
mkdir -p "$work/spec"
cleanup() {
    [ -z "${KEEP:-}" ] || { echo "bench-nodes: KEEP: cluster $cluster and $work left up (qa-nodes.sh -c $cluster down)" >&2; return; }
    qa down || true
    rm -rf "$work"
}
trap cleanup EXIT
qa up 3 >/dev/null
a1=$(qa addr 1) a2=$(qa addr 2) a3=$(qa addr 3)
qa registry 1 >/dev/null
qa registry 2 >/dev/null

# The release image, made with node 1's engine.
cp -r samples/compass/. "$work/spec/"
DOCKER_HOST=unix:///var/run/docker.sock qa exec 1 bash "$PWD/hack/make-bench-image.sh" "$size_mb" "$work/spec/images/big.tar" compass/big:2.7.3
python3 - "$work/spec/bundle.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("members:\n", "members:\n  - name: big-image\n    kind: image\n    path: images/big.tar\n", 1)
s = s.replace("  - name: restore registry pack", "  - name: load the big image\n    kind: load-images\n    member: big-image\n    roles: [single, primary, secondary]\n  - name: restore registry pack", 1)
open(p, "w").write(s)
PY
bin=$("$airbin" build "$work/spec" -o "$work/dist" 2>/dev/null)
name=$(basename "$bin")
config() { # management addresses...
    printf 'cluster_name: bench\nmanagement_nodes: [%s]\nworker_nodes: []\nregistry_address: %s:5000\nregistry_root: /srv/registry\ntools_dir: /srv/compass/bin\n' \
        "$(echo "$@" | sed 's/ /, /g')" "$1"
}
for k in 1 2 3; do
    qa ssh "$k" "mkdir -p /srv/dist && cat > /srv/dist/$name" <"$bin"
done
config "$a1" | qa ssh 1 "cat > /srv/dist/config"
for k in 2 3; do
    config "$a2" "$a3" | qa ssh "$k" "cat > /srv/dist/config"
done

reset() { # node...
    for k in "$@"; do
        qa ssh "$k" 'rm -rf /var/lib/airbin/compass-component /var/tmp/airbin /srv/registry/docker /srv/compass; docker rmi -f $(docker images -q) >/dev/null 2>&1 || true'
    done
}
seconds() { # node command...
    local k=$1 start end
    shift
    start=$(date +%s.%N)
    qa ssh "$k" "$*" >"$work/last.log" 2>&1 || { echo "bench-nodes: run failed:" >&2; tail -20 "$work/last.log" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}' 
}
# The pair by hand, as vendors' instructions say: the bundle uploaded to both nodes
# beforehand (not timed), then run on each at the same moment.
by_hand() {
    local start end
    start=$(date +%s.%N)
    qa ssh 2 sh /srv/dist/"$name" --yes >"$work/hand2.log" 2>&1 &
    qa ssh 3 sh /srv/dist/"$name" --yes >"$work/hand3.log" 2>&1 || { tail -20 "$work/hand3.log" >&2; exit 1; }
    wait $! || { tail -20 "$work/hand2.log" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}'
}
# The copy alone, node 2 to node 3 over one SSH connection, handshake included (what
# --all-nodes adds that cannot overlap: no node installs before every node has its copy
# and passed preflight).
copy_once() {
    local start end
    start=$(date +%s.%N)
    qa ssh 2 "ssh -o BatchMode=yes $a3 'cat > /var/tmp/copy-probe && rm /var/tmp/copy-probe' < /srv/dist/$name"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}'
}
single=() dual=() hand=() copies=()
for i in $(seq 1 "$runs"); do
    reset 1
    single+=("$(seconds 1 sh /srv/dist/"$name" --yes)")
    reset 2 3
    dual+=("$(seconds 2 sh /srv/dist/"$name" install --all-nodes)")
    reset 2 3
    hand+=("$(by_hand)")
    copies+=("$(copy_once)")
    echo "run $i: single ${single[-1]} s, dual ${dual[-1]} s, pair by hand ${hand[-1]} s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ms=$(median "${single[@]}")
md=$(median "${dual[@]}")
mh=$(median "${hand[@]}")
mc=$(median "${copies[@]}")
printf 'bundle %s (%s MB release image), %s runs each, medians\n' "$name" "$size_mb" "$runs"
printf '  single node install:                    %6.2f s\n' "$ms"
printf '  dual pair, install --all-nodes:         %6.2f s\n' "$md"
printf '  dual pair by hand, both at once:        %6.2f s   (bundle uploaded beforehand, not timed)\n' "$mh"
printf '  the bundle copied node to node by ssh:  %6.2f s   (%s bytes)\n' "$mc" "$(stat -c %s "$bin")"
printf '  ratio dual --all-nodes / single:        %6.2f x\n' "$(awk -v a="$md" -v b="$ms" 'BEGIN {print a / b}')"
printf '  ratio pair by hand / single:            %6.2f x   (what sharing this machine costs two nodes)\n' "$(awk -v a="$mh" -v b="$ms" 'BEGIN {print a / b}')"
printf '  ratio dual --all-nodes / pair by hand:  %6.2f x   (what the fan-out adds: reach, copy, preflight)\n' "$(awk -v a="$md" -v b="$mh" 'BEGIN {print a / b}')"
