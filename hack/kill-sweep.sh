#!/usr/bin/env bash
# QA's kill -9 sweep: installs BUNDLE once uninterrupted, then for every step boundary
# (after each journal record) and in the middle of each step, starts it again from a
# fresh state directory, kills it with SIGKILL at that point, and runs it again. Every
# rerun must finish, run no step the killed run had finished, and leave no leftover;
# its time is printed against the full run's. With KILL_AT=0.9 only one point is
# swept: 90% into the full run's wall time, the resume figure of the closing notes.
#
#   bash hack/kill-sweep.sh BUNDLE.bin [INSTALL ARGS...]     # e.g. --config site.yaml
#   KILL_AT=0.9 RUNS=3 bash hack/kill-sweep.sh BUNDLE.bin --config site.yaml
#
# The engine, registry and config the bundle installs into must be up (the install's
# own preflight says what is missing). Each run gets its own AIRBIN_STATE_DIR under
# WORK (default target/kill-sweep). RESET, a shell command, runs before every install
# that starts from nothing (e.g. remove the bundle's images from the engine and empty
# the registry root), so that every full run and every killed run pays the full cost.
set -euo pipefail
bin=${1:?usage: kill-sweep.sh BUNDLE.bin [INSTALL ARGS...]}
shift
work=${WORK:-$PWD/target/kill-sweep}
rm -rf "$work"
mkdir -p "$work"
runs=${RUNS:-1}

now() { date +%s.%N; }
reset() { [ -z "${RESET:-}" ] || sh -c "$RESET" >/dev/null 2>&1 || true; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
records() { [ -f "$1/journal.jsonl" ] && wc -l <"$1/journal.jsonl" || echo 0; }

# The uninterrupted run: its wall time, and how many journal records it writes.
full() {
    export AIRBIN_STATE_DIR=$work/full-$1
    shift
    reset
    t0=$(now)
    sh "$bin" --yes --quiet "$@" >/dev/null 2>"$work/full.err" || { cat "$work/full.err" >&2; exit 1; }
    t1=$(now)
    secs "$t0" "$t1"
}
shift_args=("$@")
full_time=$(full 0 "${shift_args[@]}")
name_dir=$(basename "$(ls -d "$work"/full-0/*/)")
full_records=$(records "$work/full-0/$name_dir")
echo "kill-sweep: full run $full_time s, $full_records journal records"

# Runs the install until the journal holds $2 records plus $3 seconds (or until $4
# seconds of wall time when $2 is empty), kills it, reruns it; prints the rerun's time.
sweep_point() {
    label=$1 after=$2 delay=$3 at=$4
    export AIRBIN_STATE_DIR=$work/run-$label
    state=$AIRBIN_STATE_DIR/$name_dir
    reset
    sh "$bin" --yes --quiet "${shift_args[@]}" >/dev/null 2>&1 &
    pid=$!
    t0=$(now)
    if [ -n "$after" ]; then
        while [ "$(records "$state")" -lt "$after" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
        sleep "$delay"
    else
        sleep "$at"
    fi
    if ! kill -9 "$pid" 2>/dev/null; then
        # The install was over before the kill: no point in timing a rerun of nothing.
        wait "$pid" 2>/dev/null || true
        echo missed
        return 0
    fi
    wait "$pid" 2>/dev/null || true
    done_before=$(grep -o '"event":"step-done"[^}]*' "$state/journal.jsonl" 2>/dev/null | sed 's/.*"step":"\([^"]*\)".*/\1/' | sort -u || true)
    t0=$(now)
    if ! sh "$bin" --yes --json "${shift_args[@]}" >"$work/rerun-$label.json" 2>"$work/rerun-$label.err"; then
        echo "kill-sweep: $label: the rerun FAILED:" >&2
        tail -5 "$work/rerun-$label.err" >&2
        exit 1
    fi
    t1=$(now)
    python3 - "$work/rerun-$label.json" "$done_before" "$label" <<'PY'
import json, sys
report, done_before, label = json.load(open(sys.argv[1])), set(filter(None, sys.argv[2].split("\n"))), sys.argv[3]
for step in report["steps"]:
    if step["name"] in done_before and step["state"] != "already-done":
        sys.exit(f"kill-sweep: {label}: step {step['name']} was done before the kill and ran again")
PY
    left=$(find "$AIRBIN_STATE_DIR" -name '.*.airbin-*' -o -name '.airbin-*' | head -3 || true)
    [ -z "$left" ] || { echo "kill-sweep: $label: leftovers after the rerun: $left" >&2; exit 1; }
    secs "$t0" "$t1"
}

if [ -n "${KILL_AT:-}" ]; then
    : >"$work/resume.txt"
    : >"$work/fulls.txt"
    for run in $(seq 1 "$runs"); do
        f=$(full "$run" "${shift_args[@]}"); echo "$f" >>"$work/fulls.txt"
        at=$(python3 -c "print(round($f * $KILL_AT, 3))")
        # A killed run that happens to be faster than the full one may end before the
        # kill: try again, each time 5% earlier (so with more left to resume, not less).
        for attempt in 1 2 3 4 5 6; do
            t=$(sweep_point "at-$run-$attempt" "" 0 "$at")
            [ "$t" = missed ] || break
            echo "kill-sweep: run $run: the install was over before the kill at $at s; again, earlier"
            at=$(python3 -c "print(round($at * 0.95, 3))")
        done
        [ "$t" != missed ] || { echo "kill-sweep: run $run: every install was over before its kill" >&2; exit 1; }
        echo "$t" >>"$work/resume.txt"
        echo "kill-sweep: run $run: full $f s; killed at $(python3 -c "print(f'{$at / $f:.2f}')") of it (${at} s), the rerun took $t s"
    done
    python3 - "$work/fulls.txt" "$work/resume.txt" "$KILL_AT" <<'PY'
import statistics, sys
full = statistics.median(float(x) for x in open(sys.argv[1]))
rerun = statistics.median(float(x) for x in open(sys.argv[2]))
print(f"kill-sweep: median full run {full:.2f} s, rerun after a kill at {float(sys.argv[3]):.0%}: {rerun:.2f} s, ratio {rerun / full:.3f}x")
PY
    exit 0
fi

printf 'kill-sweep: %-22s %8s %8s\n' "killed" "rerun s" "ratio"
for n in $(seq 1 $((full_records - 1))); do
    t=$(sweep_point "after-$n" "$n" 0 "")
    printf 'kill-sweep: %-22s %8s %8s\n' "after record $n" "$t" "$(python3 -c "print(f'{$t / $full_time:.2f}x')")"
done
# In the middle of each step: 40% into its time in the full run.
python3 - "$work/full-0/$name_dir/journal.jsonl" <<'PY' >"$work/mid.txt"
import json, sys, datetime
records = [json.loads(l) for l in open(sys.argv[1])]
for i, r in enumerate(records):
    if r["event"] == "step-started":
        end = next((x for x in records[i + 1:] if x.get("step") == r["step"] and x["event"] in ("step-done", "step-failed")), None)
        if end:
            print(i + 1, max(0.0, end["seconds"] * 0.4), r["step"].replace(" ", "_"))
PY
while read -r n delay step; do
    t=$(sweep_point "mid-$n" "$n" "$delay" "")
    printf 'kill-sweep: %-22s %8s %8s\n' "mid $step" "$t" "$(python3 -c "print(f'{$t / $full_time:.2f}x')")"
done <"$work/mid.txt"
echo "kill-sweep: every rerun finished and redid no finished step"
