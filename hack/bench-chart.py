#!/usr/bin/env python3
"""Draws docs/performance.svg from hack/bench-oem.sh's results (one JSON file a size):
install time against payload size, airbin's against the sum of the raw parts, and the
stub's peak RSS. Plain SVG, no plotting library needed.

    python3 hack/bench-chart.py target/bench-oem docs/performance.svg
"""
import glob, json, math, os, sys

results, out = sys.argv[1], sys.argv[2]
docs = sorted((json.load(open(p)) for p in glob.glob(os.path.join(results, "*.json"))), key=lambda d: d["payload_bytes"])
if not docs:
    sys.exit(f"bench-chart: no results in {results}: run hack/bench.sh oem first")

def gib(d):
    return d["payload_bytes"] / 2**30

def series(d):
    m, r = d["median_s"], d["peak_rss_kib"]
    return {
        "airbin install": m["airbin-install"],
        "raw parts (sha256sum + docker load -i + tar -x)": m["raw-check"] + m["raw-load"] + m["raw-restore"],
        "stub peak RSS": max(r["airbin-check"], r["airbin-extract"], r["airbin-install"]) / 1024,
    }

W, H, PAD = 900, 380, 60
panel_w = (W - 3 * PAD) / 2
colors = {"airbin install": "#1f77b4", "raw parts (sha256sum + docker load -i + tar -x)": "#ff7f0e", "stub peak RSS": "#2ca02c"}
xs = [gib(d) for d in docs]
xmin, xmax = min(xs) / 1.5, max(xs) * 1.5

def x_at(v, left):
    return left + (math.log(v) - math.log(xmin)) / (math.log(xmax) - math.log(xmin)) * panel_w

svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
for i, (title, keys, unit, top) in enumerate([
    ("install time, seconds", ["airbin install", "raw parts (sha256sum + docker load -i + tar -x)"], "s", None),
    ("stub peak RSS, MiB (goal: at most 100)", ["stub peak RSS"], "MiB", 128),
]):
    left = PAD + i * (panel_w + PAD)
    values = [series(d)[k] for d in docs for k in keys]
    ymax = top or max(values) * 1.15
    y_at = lambda v: H - PAD - v / ymax * (H - 2 * PAD)
    svg.append(f'<text x="{left}" y="{PAD - 25}" font-weight="bold">{title}</text>')
    svg.append(f'<line x1="{left}" y1="{H - PAD}" x2="{left + panel_w}" y2="{H - PAD}" stroke="black"/>')
    svg.append(f'<line x1="{left}" y1="{PAD}" x2="{left}" y2="{H - PAD}" stroke="black"/>')
    for t in range(5):
        v = ymax * t / 4
        svg.append(f'<text x="{left - 6}" y="{y_at(v) + 4}" text-anchor="end">{v:.0f}</text>')
        svg.append(f'<line x1="{left}" y1="{y_at(v)}" x2="{left + panel_w}" y2="{y_at(v)}" stroke="#ddd"/>')
    for d in docs:
        svg.append(f'<text x="{x_at(gib(d), left)}" y="{H - PAD + 16}" text-anchor="middle">{gib(d):.2g} GiB</text>')
    for n, k in enumerate(keys):
        points = " ".join(f"{x_at(gib(d), left):.1f},{y_at(series(d)[k]):.1f}" for d in docs)
        svg.append(f'<polyline points="{points}" fill="none" stroke="{colors[k]}" stroke-width="2"/>')
        for d in docs:
            svg.append(f'<circle cx="{x_at(gib(d), left):.1f}" cy="{y_at(series(d)[k]):.1f}" r="3" fill="{colors[k]}"/>')
        svg.append(f'<text x="{left + 8}" y="{PAD + 14 + 16 * n}" fill="{colors[k]}">{k}</text>')
    svg.append(f'<text x="{left + panel_w / 2}" y="{H - PAD + 36}" text-anchor="middle">payload size (log scale)</text>')
svg.append("</svg>")
open(out, "w").write("\n".join(svg) + "\n")
print(f"bench-chart: wrote {out} ({len(docs)} sizes)")
