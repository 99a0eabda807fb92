#!/usr/bin/env python3
"""Summarise a tools/bench/formats.sh results folder as a markdown table.

Pools every round's samples per configuration (this engine: REPS measured runs a round; llama-bench:
REPS samples a round) and prints medians (min-max), the bytes of weights one decoded token reads
(this engine's `bench`), the decode bound at the median 2-thread read bandwidth measured around the
rounds, the share of it reached, and resident memory after the runs.
usage: summarize_formats.py RESULTS_DIR
"""
import glob, json, os, re, statistics, sys

d = sys.argv[1]
med = statistics.median


def fmt(v):
    return f"{med(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-"


gbs = []
for p in glob.glob(f"{d}/bw.*.txt"):
    for line in open(p):
        m = re.search(r"RESULT bw .* median=([0-9.]+)", line)
        if m:
            gbs.append(float(m.group(1)))
bw = med(gbs) if gbs else None

rows = {}
for p in sorted(glob.glob(f"{d}/*.txt")):
    name = os.path.basename(p).rsplit(".", 2)[0]
    if name in ("load", "bw"):
        continue
    for line in open(p):
        if line.startswith("{"):
            j = json.loads(line)
            r = rows.setdefault(name, {"pp": [], "tg": [], "bpt": j["bytes_per_token"], "rss": [],
                                       "file": j.get("checkpoint_bytes"), "engine": "moe"})
            r["pp"] += j["prefill_tok_s"]
            r["tg"] += j["decode_tok_s"]
            r["rss"].append(j.get("rss", 0))
for p in sorted(glob.glob(f"{d}/*.json")):
    name, _, kind, _ = os.path.basename(p).rsplit(".", 3)
    r = rows.setdefault(name, {"pp": [], "tg": [], "bpt": None, "rss": [], "file": None,
                               "engine": "llama.cpp"})
    try:
        for x in json.load(open(p)):
            r["pp" if kind == "pp" else "tg"].extend(x["samples_ts"])
            r["file"] = x.get("model_size")
    except (ValueError, KeyError):
        pass

print(f"2-thread read bandwidth: median {bw:.1f} GB/s ({min(gbs):.1f}-{max(gbs):.1f}, {len(gbs)} probes)"
      if bw else "no bandwidth probe")
print()
print("| config | engine | prefill tok/s | decode tok/s | GB/token | decode bound | of bound | file GB | RSS GB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name, r in rows.items():
    bpt = r["bpt"]
    bound = bw * 1e9 / bpt if bw and bpt else None
    share = f"{100 * med(r['tg']) / bound:.0f}%" if bound and r["tg"] else "-"
    print(f"| {name} | {r['engine']} | {fmt(r['pp'])} | {fmt(r['tg'])} | "
          f"{bpt / 1e9:.3f} | {bound:.1f} | {share} | " if bpt else
          f"| {name} | {r['engine']} | {fmt(r['pp'])} | {fmt(r['tg'])} | - | - | - | ", end="")
    print(f"{r['file'] / 1e9:.2f} | " if r["file"] else "- | ", end="")
    print(f"{max(r['rss']) / 1e9:.2f} |" if r["rss"] else "- |")
