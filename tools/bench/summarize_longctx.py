#!/usr/bin/env python3
"""Summarises a tools/bench/longctx.sh run: decode tok/s at each depth, this engine (f32 and bf16 KV
cache) against llama.cpp (f16 cache), medians over rounds and repetitions, and their ratios.

usage: summarize_longctx.py OUT
"""
import glob
import json
import os
import re
import statistics
import sys


def moe_runs(path):
    """Decode tok/s of every repetition in one `bench --json` output."""
    for line in open(path, encoding="utf-8"):
        if line.startswith("{"):
            return json.loads(line)["decode_tok_s"]
    raise SystemExit(f"{path}: no JSON line (did the run fail? see the file)")


def llama_runs(path):
    try:
        rows = json.load(open(path, encoding="utf-8"))
    except json.JSONDecodeError:
        print(f"{path}: no complete llama-bench JSON (still running or failed); left out", file=sys.stderr)
        return []
    return [v for r in rows if r["n_gen"] for v in r["samples_ts"]]


def main(out):
    runs = {}  # (shape, depth, engine) -> [tok/s]
    for p in glob.glob(os.path.join(out, "*.txt")) + glob.glob(os.path.join(out, "*.json")):
        m = re.match(r"(\w+)\.(\d+)\.(moe-\w+|llama)\.\d+\.(txt|json)$", os.path.basename(p))
        if not m:
            continue
        shape, depth, engine, _ = m.groups()
        vals = moe_runs(p) if engine.startswith("moe") else llama_runs(p)
        runs.setdefault((shape, int(depth), engine), []).extend(vals)
    bws = []
    for p in glob.glob(os.path.join(out, "bw.*.txt")):
        for line in open(p, encoding="utf-8"):
            m = re.search(r"median=([\d.]+) GB/s", line)
            if m:
                bws.append(float(m.group(1)))
    med = lambda k: statistics.median(runs[k]) if runs.get(k) else None
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    print("| shape | depth | moe, f32 cache | moe, bf16 cache | llama.cpp, f16 cache | moe bf16 / llama.cpp | moe f32 / llama.cpp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shape, depth in sorted({(s, d) for s, d, _ in runs}):
        f32, b16, ll = (med((shape, depth, e)) for e in ("moe-f32", "moe-bf16", "llama"))
        ratio = lambda a: "-" if a is None or not ll else f"{a / ll:.2f}x"
        print(f"| {shape} | {depth} | {fmt(f32)} | {fmt(b16)} | {fmt(ll)} | {ratio(b16)} | {ratio(f32)} |")
    if bws:
        print(f"\n2-thread read bandwidth: median {statistics.median(bws):.1f} GB/s "
              f"({min(bws):.1f}-{max(bws):.1f}, {len(bws)} probes); decode tok/s are medians of "
              "every repetition of every round.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
