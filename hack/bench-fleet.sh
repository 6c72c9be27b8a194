#!/usr/bin/env bash
# The fleet benchmark: the wall time of the airbin.fleet install playbook over 1, 5, 10
# and 20 test nodes (hack/qa-nodes.sh: own engine, own sshd; node 1 the primary, the rest
# workers), each node's link capped by tc (NODE_RATE, default 1gbit) and the controller's
# (this host's side of the nodes' bridge) at CONTROLLER_RATE (default 10gbit), against
# one node's. The bundle is the compass sample plus a SIZE_MB release image (default
# 100) that the primary loads and that every node receives and verifies. RUNS runs of
# each size (default 1), medians; every run on fresh nodes. Writes docs/fleet.svg.
#
#   bash hack/bench-fleet.sh                      # as root; needs what hack/setup-host.sh installs
#   SIZES="1 5 10 20" SIZE_MB=300 RUNS=3 bash hack/bench-fleet.sh
#
# Every node shares this machine's two cores: the nodes' verifications and the
# controller's forks compete for them, where a real fleet would not.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${SIZES:-1 5 10 20}
size_mb=${SIZE_MB:-100}
runs=${RUNS:-1}
node_rate=${NODE_RATE:-1gbit}
controller_rate=${CONTROLLER_RATE:-10gbit}
cluster=${QA_CLUSTER:-45}
qa() { bash hack/qa-nodes.sh -c "$cluster" "$@"; }
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
work=${BENCH_DIR:-$PWD/target/bench-fleet}
rm -rf "$work"
mkdir -p "$work/spec"
trap 'qa down >/dev/null 2>&1 || true' EXIT

ansible-galaxy collection build -f --output-path "$work" ansible/ansible_collections/airbin/fleet >/dev/null
ansible-galaxy collection install --offline -p "$work/collections" "$work"/airbin-fleet-*.tar.gz >/dev/null

# The release image, made with a node's engine.
cp -r samples/compass/. "$work/spec/"
qa up 1 >/dev/null
DOCKER_HOST=unix:///var/run/docker.sock qa exec 1 bash "$PWD/hack/make-bench-image.sh" "$size_mb" "$work/spec/images/big.tar" compass/big:2.7.3
qa down >/dev/null
/usr/bin/python3 - "$work/spec/bundle.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("members:\n", "members:\n  - name: big-image\n    kind: image\n    path: images/big.tar\n", 1)
s = s.replace("  - name: restore registry pack", "  - name: load the big image\n    kind: load-images\n    member: big-image\n    roles: [single, primary, secondary]\n  - name: restore registry pack", 1)
open(p, "w").write(s)
PY
bin=$("$airbin" build "$work/spec" -o "$work/dist" 2>/dev/null)
echo "bench-fleet: $(basename "$bin"), $(du -m "$bin" | cut -f1) MB; nodes at $node_rate, the controller at $controller_rate"

one_run() { # N: seconds of the playbook on N fresh nodes
    local n=$1 k addrs workers base start end
    qa up "$n" >/dev/null
    qa registry 1 >/dev/null
    base=/tmp/airbin-qa-$cluster
    for k in $(seq 1 "$n"); do
        tc qdisc replace dev "q$cluster-$k" root tbf rate "$node_rate" burst 4mb latency 100ms
    done
    tc qdisc replace dev "abr$cluster" root tbf rate "$controller_rate" burst 16mb latency 100ms
    workers=$(for k in $(seq 2 "$n"); do qa addr "$k"; done | paste -sd, - | sed 's/,/, /g')
    printf 'cluster_name: bench\nmanagement_nodes: [%s]\nworker_nodes: [%s]\nregistry_address: %s:5000\nregistry_root: /srv/registry\ntools_dir: /srv/compass/bin\n' \
        "$(qa addr 1)" "$workers" "$(qa addr 1)" >"$work/config"
    {
        echo "[airbin_primary]"; qa addr 1
        echo "[airbin_workers]"; for k in $(seq 2 "$n"); do qa addr "$k"; done
        echo "[all:vars]"
        echo "ansible_user=root"
        echo "ansible_python_interpreter=/usr/bin/python3"
        echo "ansible_remote_tmp=/var/tmp/.ansible"
        echo "ansible_ssh_common_args=-i $base/id_ed25519 -o UserKnownHostsFile=$base/known_hosts -o BatchMode=yes"
    } >"$work/inventory.ini"
    busy_before=$(busy)
    start=$(date +%s.%N)
    ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_FORKS=20 ANSIBLE_PIPELINING=1 ANSIBLE_NOCOLOR=1 \
        /usr/bin/time -f "%U %S" -o "$work/controller-$n.cpu" \
        ansible-playbook -i "$work/inventory.ini" airbin.fleet.install \
        -e "airbin_bundle=$bin" -e "airbin_config=$work/config" >"$work/play-$n.log" 2>&1 \
        || { echo "bench-fleet: the playbook failed on $n node(s): $work/play-$n.log" >&2; tail -30 "$work/play-$n.log" >&2; exit 1; }
    end=$(date +%s.%N)
    busy_after=$(busy)
    qa down >/dev/null
    # wall, the machine's CPU busy over it (of $cores cores), the controller's share.
    awk -v a="$start" -v b="$end" -v c0="$busy_before" -v c1="$busy_after" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" \
        -v ctl="$(awk '{print $1 + $2}' "$work/controller-$n.cpu")" \
        'BEGIN {w = b - a; cpu = (c1 - c0) / hz; printf "%.1f %.1f %.0f%% %.1f", w, cpu, 100 * cpu / (w * cores), ctl}'
}

# Jiffies every CPU spent busy (user, nice, system, irq, softirq) since boot.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

: >"$work/results.txt"
for n in $sizes; do
    runs_of=()
    for _ in $(seq 1 "$runs"); do runs_of+=("$(one_run "$n")"); done
    median=$(printf '%s\n' "${runs_of[@]}" | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
    echo "$n $median" >>"$work/results.txt"
    set -- $median
    echo "bench-fleet: $n node(s): median $1 s wall; CPU busy $2 s ($3 of the machine), the controller (ansible-playbook and its ssh) $4 s of it"
done
one=$(awk 'NR == 1 {print $2}' "$work/results.txt")
awk -v one="$one" '{printf "bench-fleet: %2d node(s) %6.1f s  %.2fx one node\n", $1, $2, $2 / one}' "$work/results.txt"

/usr/bin/python3 - "$work/results.txt" docs/fleet.svg "$node_rate" "$controller_rate" "$size_mb" <<'PY'
import sys
rows = [tuple(float(x) for x in l.split()[:2]) for l in open(sys.argv[1]) if l.strip()]
out, node_rate, controller_rate, size_mb = sys.argv[2:6]
W, H, P = 640, 360, 60
xmax = max(n for n, _ in rows) * 1.05
one = rows[0][1]
ymax = max(max(t for _, t in rows), one * 1.6) * 1.1
x = lambda n: P + (W - 2 * P) * n / xmax
y = lambda t: H - P - (H - 2 * P) * t / ymax
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">airbin.fleet install playbook: wall time against nodes</text>',
       f'<text x="{W/2}" y="38" text-anchor="middle" fill="#555">compass + {size_mb} MB image; nodes {node_rate}, controller {controller_rate}; 2 shared cores</text>',
       f'<line x1="{P}" y1="{H-P}" x2="{W-P}" y2="{H-P}" stroke="#333"/><line x1="{P}" y1="{P}" x2="{P}" y2="{H-P}" stroke="#333"/>',
       f'<line x1="{P}" y1="{y(one*1.5):.1f}" x2="{W-P}" y2="{y(one*1.5):.1f}" stroke="#d62728" stroke-dasharray="5,4"/>',
       f'<text x="{W-P}" y="{y(one*1.5)-5:.1f}" text-anchor="end" fill="#d62728">goal: 1.5x one node</text>']
for n, t in rows:
    svg.append(f'<circle cx="{x(n):.1f}" cy="{y(t):.1f}" r="4" fill="#1f77b4"/>')
    svg.append(f'<text x="{x(n):.1f}" y="{y(t)-8:.1f}" text-anchor="middle">{t:.0f} s ({t/one:.2f}x)</text>')
    svg.append(f'<text x="{x(n):.1f}" y="{H-P+16}" text-anchor="middle">{int(n)}</text>')
svg.append('<polyline fill="none" stroke="#1f77b4" points="' + " ".join(f"{x(n):.1f},{y(t):.1f}" for n, t in rows) + '"/>')
svg.append(f'<text x="{W/2}" y="{H-15}" text-anchor="middle">nodes</text>')
svg.append(f'<text x="15" y="{H/2}" transform="rotate(-90 15 {H/2})" text-anchor="middle">seconds</text></svg>')
open(out, "w").write("\n".join(svg) + "\n")
print(f"bench-fleet: {out}")
PY
