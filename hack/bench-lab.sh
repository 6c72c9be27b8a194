#!/usr/bin/env bash
# `airbin lab`'s figures: the wall time of the whole netns matrix on the compass sample
# (with an earlier build, v2.7.2, under --previous), and a qemu VM's boot to sshd: the
# "machines up" time of the install case, under KVM where a guest really boots under it
# and TCG otherwise (the lab's probe decides and says which), next to a netns machine's.
#
#   bash hack/bench-lab.sh                 # as root; builds airbin, the bundles, the image
#   RUNS=3 IMAGE=DIR bash hack/bench-lab.sh
#
# The qemu image is built with `airbin lab image` into target/lab-image unless IMAGE
# names one (about a minute and a half from the host's apt sources).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
image=${IMAGE:-$PWD/target/lab-image}
work=$(mktemp -d /var/tmp/airbin-bench-lab.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build -q --release -p airbin
airbin=$PWD/target/release/airbin

"$airbin" build samples/compass -o "$work/dist" -q
cp -r samples/compass "$work/compass-v2.7.2"
sed -i 's/^version: v2.7.3/version: v2.7.2/' "$work/compass-v2.7.2/bundle.yaml"
"$airbin" build "$work/compass-v2.7.2" -o "$work/prev" -q
[ -f "$image/image.json" ] || "$airbin" lab image -o "$image"

# A number from a report: python3 reads the JSON, jq may be missing.
field() { /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

matrix=() netns_up=() qemu_up=()
for i in $(seq 1 "$runs"); do
    "$airbin" lab run "$work/dist/compass-component-v2.7.3-amd64.bin" --previous "$work/prev" \
        --config samples/compass/lab-config.yaml -o "$work/netns-$i" -q || { echo "bench-lab: the netns matrix failed: $work/netns-$i/report.html" >&2; exit 1; }
    matrix+=("$(field "$work/netns-$i/report.json" "round(r['seconds'], 1)")")
    netns_up+=("$(field "$work/netns-$i/report.json" "round([x for x in r['cases'] if x['id']=='install'][0]['runs'][0]['seconds'], 2)")")
    "$airbin" lab run "$work/dist/compass-component-v2.7.3-amd64.bin" --backend qemu --image "$image" \
        --config samples/compass/lab-config.yaml --scenarios install -o "$work/qemu-$i" -q 2>"$work/qemu-$i.err" \
        || { echo "bench-lab: the qemu install failed: $work/qemu-$i/report.html" >&2; exit 1; }
    qemu_up+=("$(field "$work/qemu-$i/report.json" "round([x for x in r['cases'] if x['id']=='install'][0]['runs'][0]['seconds'], 2)")")
done
accel=$(field "$work/qemu-1/report.json" "r['machines']")
m=$(printf '%s\n' "${matrix[@]}" | median)
n=$(printf '%s\n' "${netns_up[@]}" | median)
q=$(printf '%s\n' "${qemu_up[@]}" | median)
echo "netns matrix (compass, 11 cases, 1 skipped): ${matrix[*]} s, median $m s"
echo "machines up: netns ${netns_up[*]} s (median $n), qemu ${qemu_up[*]} s (median $q): $(awk -v a="$q" -v b="$n" 'BEGIN {printf "%.1f", a / b}')x"
echo "qemu: $accel"
