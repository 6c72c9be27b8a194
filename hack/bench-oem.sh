#!/usr/bin/env bash
# The OEM benchmark (`bash hack/bench.sh oem SIZE_MB`): an OEM-shaped payload of SIZE_MB
# (hack/make-oem-payload.sh: a `docker save` archive, a registry pack of gzip'd blobs, an
# admin tool, text), packed and installed three ways, side by side, alternating, RUNS
# times (default 3), medians:
#
#   airbin     airbin build; sh X.bin check | extract | install (load, restore, a command)
#   makeself   makeself --zstd --complevel 12 --sha256 (airbin's level); --check;
#              --noexec --target; a run of its install.sh doing the same three steps
#   raw        tar -c | zstd -T0 -12; sha256sum; zstd -dc | tar -x; docker load -i of the
#              image archive + tar -x of the pack (the parts, already extracted)
#
# and the resume figure: airbin's rerun after a kill -9 at 90% of its install. Prints the
# table and the ratios against the goals, and writes target/bench-oem/SIZE_MB.json.
# With AIRBIN_ONLY=1, makeself is left out; it is anyway above MAKESELF_UP_TO_MB (default
# 1024: it takes a minute a GB to build), where RUNS_LARGE (default 1) runs are made.
# SCALE="256 1024 4096" runs each size and draws docs/performance.svg from all the JSON
# files in target/bench-oem.
#
#   bash hack/bench.sh oem 1024
#   SCALE="256 1024 4096 10240" bash hack/bench.sh oem
#
# Runs its own Docker Engine (hack/dockerd.sh) and needs what hack/setup-host.sh installs,
# plus makeself and zstd (installed here when missing, as root). Not a test: run it on a
# quiet machine and read the ratios, not the seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
runs_small=${RUNS:-3}
results=${RESULTS:-$PWD/target/bench-oem}
for pkg in makeself zstd bc; do
    command -v "$pkg" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin
mkdir -p "$results"

engine=
cleanup() { [ -z "$engine" ] || bash hack/dockerd.sh stop "$engine"; }
trap cleanup EXIT
engine=$(mktemp -d /tmp/airbin-bench-oem.XXXXXX)
eval "$(bash hack/dockerd.sh start "$engine")"

# measure FILE LABEL COMMAND...: appends "LABEL seconds peak-RSS-KiB" to FILE.
measure() {
    file=$1 label=$2
    shift 2
    sync
    /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null 2>"$work/err.out" || { cat "$work/err.out" >&2; exit 1; }
    read -r secs rss <"$work/time.out"
    echo "$label $secs $rss" >>"$file"
    printf 'bench-oem: %-22s %8.2f s  %8d KiB\n' "$label" "$secs" "$rss"
}
# A fresh engine and registry root before every install.
reset() {
    docker rmi -f oem-bench/api:1 oem-bench/worker:1 >/dev/null 2>&1 || true
    rm -rf "$work/root" "$work/state" "$work/mk-target"
}

airbin_install() {
    reset
    AIRBIN_STATE_DIR=$work/state measure "$times" airbin-install sh "$bin" install --quiet --yes --config "$work/site.yaml"
    python3 - "$work/state/oem-bench/journal.jsonl" "$times" <<'PY'
import json, sys
steps = {r["step"]: r["seconds"] for r in map(json.loads, open(sys.argv[1])) if r["event"] == "step-done"}
with open(sys.argv[2], "a") as out:
    out.write(f"airbin-load {steps['load release images']:.3f} 0\nairbin-restore {steps['restore registry pack']:.3f} 0\n")
print(f"bench-oem:   its load step {steps['load release images']:8.2f} s, its restore step {steps['restore registry pack']:6.3f} s")
PY
}
raw_install() {
    reset
    # The raw parts one after the other, as an install runs them: the restore meets
    # the load's writes still in flight, as airbin's does.
    measure "$times" raw-install sh -c '
        now() { date +%s.%N; }
        t0=$(now); docker load -i "$1/payload/images/release.tar"
        t1=$(now); mkdir -p "$1/root" && tar -C "$1/root" -xf "$1/payload/registry/pack.tar"
        t2=$(now); echo "raw-load $(echo "$t1 - $t0" | bc) 0" >>"$2"; echo "raw-restore $(echo "$t2 - $t1" | bc) 0" >>"$2"' \
        raw-install "$work" "$times"
    awk '$1 == "raw-load" { l = $2 } $1 == "raw-restore" { r = $2 } END { printf "bench-oem:   docker load -i %8.2f s, tar -x %6.3f s\n", l, r }' "$times"
}

one_size() {
    size_mb=$1
    runs=$runs_small
    makeself=${AIRBIN_ONLY:+no}
    if [ "$size_mb" -gt "${MAKESELF_UP_TO_MB:-1024}" ]; then
        runs=${RUNS_LARGE:-1}
        makeself=no
    fi
    work=$PWD/target/bench-oem-work
    rm -rf "$work"
    mkdir -p "$work"
    bash hack/make-oem-payload.sh "$size_mb" "$work/payload"
    payload_bytes=$(du -sb "$work/payload" | cut -f1)
    printf 'registry_root: %s\n' "$work/root" >"$work/site.yaml"
    bin=$work/dist/oem-bench-1-amd64.bin
    times=$work/times.txt
    : >"$times"
    for run in $(seq 1 "$runs"); do
        echo "bench-oem: $size_mb MB, run $run of $runs"
        rm -rf "$work/dist" "$work/raw.tar.zst" "$work/mk.run"
        measure "$times" airbin-build "$airbin" -q build "$work/payload" -o "$work/dist"
        measure "$times" raw-build sh -c "tar -C '$work/payload' -c . | zstd -q -T0 -12 -o '$work/raw.tar.zst'"
        [ -n "$makeself" ] || measure "$times" makeself-build makeself --quiet --zstd --complevel 12 --sha256 "$work/payload" "$work/mk.run" oem-bench ./install.sh

        measure "$times" airbin-check sh "$bin" check --quiet
        measure "$times" raw-check sha256sum "$work/raw.tar.zst"
        [ -n "$makeself" ] || measure "$times" makeself-check sh "$work/mk.run" --check

        measure "$times" airbin-extract sh "$bin" extract --quiet --target "$work/out"
        rm -rf "$work/out" && mkdir -p "$work/out"
        measure "$times" raw-extract sh -c "zstd -dc '$work/raw.tar.zst' | tar -C '$work/out' -x"
        rm -rf "$work/out"
        if [ -z "$makeself" ]; then
            measure "$times" makeself-extract sh "$work/mk.run" --quiet --noexec --target "$work/out"
            rm -rf "$work/out"
        fi

        # The installs take turns at going first, so that neither always meets the
        # engine and the page cache as the other left them.
        if [ $((run % 2)) = 1 ]; then airbin_install; raw_install; else raw_install; airbin_install; fi
        if [ -z "$makeself" ]; then
            reset
            measure "$times" makeself-install sh "$work/mk.run" --quiet --target "$work/mk-target" -- "$work/root"
        fi
    done
    reset
    # Resume: the rerun after a kill -9 at 90% of the install, against a full install.
    RESET="docker rmi -f oem-bench/api:1 oem-bench/worker:1; rm -rf '$work/root'" KILL_AT=0.9 RUNS=$runs WORK=$work/sweep \
        bash hack/kill-sweep.sh "$bin" --config "$work/site.yaml" | tee "$work/sweep.txt"
    reset

    python3 - "$times" "$work/sweep/fulls.txt" "$work/sweep/resume.txt" "$size_mb" "$payload_bytes" "$results/$size_mb.json" \
        "$bin" "$work/raw.tar.zst" "$work/mk.run" <<'PY'
import json, os, statistics, sys
times, fulls, resumes, size_mb, payload, out, bin_, raw, mk = sys.argv[1:]
rows = {}
for line in open(times):
    label, secs, rss = line.split()
    rows.setdefault(label, []).append((float(secs), int(rss)))
med = {k: statistics.median(s for s, _ in v) for k, v in rows.items()}
rss = {k: max(r for _, r in v) for k, v in rows.items()}
full = [float(x) for x in open(fulls)]
resume = [float(x) for x in open(resumes)]
sizes = {"airbin": os.path.getsize(bin_), "raw": os.path.getsize(raw)}
if os.path.exists(mk):
    sizes["makeself"] = os.path.getsize(mk)
doc = {"size_mb": int(size_mb), "payload_bytes": int(payload), "cores": os.cpu_count(), "runs": len(rows["airbin-build"]),
       "median_s": med, "runs_s": {k: [s for s, _ in v] for k, v in rows.items()}, "peak_rss_kib": rss, "bytes": sizes,
       "resume": {"full_s": statistics.median(full), "rerun_s": statistics.median(resume)}}
json.dump(doc, open(out, "w"), indent=1)

tools = [t for t in ("airbin", "makeself", "raw") if f"{t}-build" in med]
print(f"\nbench-oem: {int(payload) / 2**20:.0f} MiB OEM payload, {os.cpu_count()} cores, medians of {doc['runs']} alternating runs")
print(f"{'':10}{'build s':>9}{'check s':>9}{'extract s':>11}{'install s':>11}{'size MiB':>10}{'build RSS':>11}{'run RSS':>9}  (MiB)")
for t in tools:
    install = med[f"{t}-install"]
    run_rss = max(v for k, v in rss.items() if k.startswith(t + "-") and not k.endswith("-build")) / 1024
    print(f"{t:10}{med[t + '-build']:9.2f}{med[t + '-check']:9.2f}{med[t + '-extract']:11.2f}{install:11.2f}"
          f"{sizes[t] / 2**20:10.1f}{rss[t + '-build'] / 1024:11.1f}{run_rss:9.1f}")
raw_install = med["raw-install"]
goals = [
    ("build / raw tar|zstd -T0", med["airbin-build"] / med["raw-build"], 1.0),
    ("extract / raw zstd -dc|tar -x", med["airbin-extract"] / med["raw-extract"], 0.8),
    ("image load / docker load -i", med["airbin-load"] / med["raw-load"], 1.05),
    ("registry restore / tar -x", med["airbin-restore"] / med["raw-restore"], 1.1),
    ("install / sum of raw parts", med["airbin-install"] / (raw_install + med["raw-check"]), 1.1),
    ("resume after kill at 90% / full", doc["resume"]["rerun_s"] / doc["resume"]["full_s"], 0.15),
    ("stub peak RSS MiB", max(rss["airbin-check"], rss["airbin-extract"], rss["airbin-install"]) / 1024, 100),
]
if "makeself" in sizes:
    goals.insert(0, ("size / makeself's", sizes["airbin"] / sizes["makeself"], 1.0))
print()
for name, value, goal in goals:
    print(f"bench-oem: {name:34} {value:8.3f}  goal <= {goal}  {'met' if value <= goal else 'NOT met'}")
PY
    rm -rf "$work"
}

if [ -n "${SCALE:-}" ]; then
    for size in $SCALE; do one_size "$size"; done
    python3 hack/bench-chart.py "$results" docs/performance.svg
else
    one_size "${1:-${SIZE_MB:-1024}}"
fi
