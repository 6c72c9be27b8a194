#!/usr/bin/env bash
# Benchmark of the .bin itself: builds a bundle of SIZE_MB (default 1024) of mixed data
# (1/4 log-like text, 1/4 executables, 1/2 random) with airbin and, side by side on the
# same input, with makeself (gzip, its default, and zstd); reports build, check and
# extract wall time, peak RSS and size, and the ratios to makeself.
#
#   bash hack/bench.sh                 # SIZE_MB=4096 bash hack/bench.sh for the 4 GB figure
#   AIRBIN_ONLY=1 SIZE_MB=4096 bash hack/bench.sh   # airbin alone (makeself takes minutes a GB)
#   bash hack/bench.sh oem [SIZE_MB]   # the OEM-shaped payload, installed too: hack/bench-oem.sh
#
# Not a test: run it on a quiet machine and compare the ratios, not the seconds.
# Needs makeself and zstd (installed here when missing, as root).
set -euo pipefail
if [ "${1:-}" = oem ]; then
    shift
    exec bash "$(dirname "$0")/bench-oem.sh" "$@"
fi
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-1024}
for pkg in makeself zstd; do
    command -v "$pkg" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
cargo build --release --locked -q -p airbin
airbin=$PWD/target/release/airbin

work=${BENCH_DIR:-$PWD/target/bench}
rm -rf "$work"
mkdir -p "$work/input/payload"
trap 'rm -rf "$work"' EXIT

echo "bench: making $size_mb MB of input in $work/input"
python3 - "$work/input/payload" "$size_mb" <<'PY'
import os, sys
out, size = sys.argv[1], int(sys.argv[2]) << 20
quarter = size // 4
with open(os.path.join(out, "app.log"), "w") as f:
    n, written = 0, 0
    while written < quarter:
        line = f"2026-11-22T05:{n % 60:02d}:{n % 59:02d}Z node-{n % 7} compass-api: request {n} served in {n % 997} ms status={200 if n % 13 else 503}\n"
        f.write(line); written += len(line); n += 1
bins = [os.path.join(d, b) for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu") for b in sorted(os.listdir(d))]
with open(os.path.join(out, "tools.bin"), "wb") as f:
    written = 0
    while written < quarter:
        for path in bins:
            if written >= quarter: break
            if os.path.isfile(path) and not os.path.islink(path):
                data = open(path, "rb").read()[: quarter - written]
                f.write(data); written += len(data)
with open(os.path.join(out, "random.dat"), "wb") as f, open("/dev/urandom", "rb") as r:
    for _ in range((size - 2 * quarter) >> 20):
        f.write(r.read(1 << 20))
PY
cat > "$work/input/bundle.yaml" <<'EOF'
name: bench
version: "1"
members:
  - {name: app.log, kind: file, path: payload/app.log}
  - {name: tools.bin, kind: file, path: payload/tools.bin}
  - {name: random.dat, kind: file, path: payload/random.dat}
EOF

# measure LABEL COMMAND...: wall seconds and peak RSS (KiB) into $results
results=$work/results.txt
: >"$results"
measure() {
    label=$1; shift
    sync
    /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null 2>"$work/err.out" || { cat "$work/err.out" >&2; exit 1; }
    read -r secs rss <"$work/time.out"
    echo "$label $secs $rss" >>"$results"
    printf 'bench: %-24s %8.2f s  %8d KiB peak RSS\n' "$label" "$secs" "$rss"
}

measure airbin-build "$airbin" -q build "$work/input/bundle.yaml" -o "$work/dist"
bin=$work/dist/bench-1-amd64.bin
measure airbin-check sh "$bin" check --quiet
measure airbin-extract sh "$bin" extract --quiet --target "$work/out-airbin"
cmp "$work/input/payload/random.dat" "$work/out-airbin/random.dat"
rm -rf "$work/out-airbin"

if [ -n "${AIRBIN_ONLY:-}" ]; then
    echo "bench: $size_mb MB payload, bundle $(du -m "$bin" | cut -f1) MB; makeself skipped (AIRBIN_ONLY)"
    exit 0
fi

measure makeself-gzip-build makeself --quiet --sha256 "$work/input/payload" "$work/mk-gzip.run" bench true
measure makeself-gzip-check sh "$work/mk-gzip.run" --check
measure makeself-gzip-extract sh "$work/mk-gzip.run" --quiet --noexec --target "$work/out-mk"
rm -rf "$work/out-mk"
measure makeself-zstd-build makeself --quiet --zstd --sha256 "$work/input/payload" "$work/mk-zstd.run" bench true
measure makeself-zstd-check sh "$work/mk-zstd.run" --check
measure makeself-zstd-extract sh "$work/mk-zstd.run" --quiet --noexec --target "$work/out-mk"
rm -rf "$work/out-mk"

python3 - "$results" "$bin" "$work/mk-gzip.run" "$work/mk-zstd.run" "$size_mb" <<'PY'
import os, sys
rows = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(sys.argv[1])}
sizes = {"airbin": os.path.getsize(sys.argv[2]), "makeself-gzip": os.path.getsize(sys.argv[3]), "makeself-zstd": os.path.getsize(sys.argv[4])}
print(f"\nbench: {sys.argv[5]} MB payload, {os.cpu_count()} cores")
print(f"{'':16}{'build s':>10}{'check s':>10}{'extract s':>11}{'peak RSS MiB':>14}{'size MiB':>10}")
for tool in ("airbin", "makeself-gzip", "makeself-zstd"):
    b, c, e = (rows[f"{tool}-{step}"] for step in ("build", "check", "extract"))
    print(f"{tool:16}{b[0]:10.2f}{c[0]:10.2f}{e[0]:11.2f}{max(c[1], e[1]) / 1024:14.1f}{sizes[tool] / 2**20:10.1f}")
for other in ("makeself-gzip", "makeself-zstd"):
    ratios = [rows[f"airbin-{s}"][0] / rows[f"{other}-{s}"][0] for s in ("build", "check", "extract")]
    print(f"airbin / {other}: build {ratios[0]:.2f}x, check {ratios[1]:.2f}x, extract {ratios[2]:.2f}x (lower is better)")
PY
