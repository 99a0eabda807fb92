#!/usr/bin/env python3
"""Summarise a tools/bench/compare.sh results folder as a markdown table.

Pools the samples of every round (this engine: 3 measured runs per round; llama-bench: 3 samples per
round; PyTorch: 3 reps) and prints medians with min-max, the ratios against llama.cpp BF16 and
PyTorch bf16, and the decode bound implied by the 2-thread read bandwidth measured before and after
each round (bytes of weights per decoded token / bandwidth).
usage: summarize.py RESULTS_DIR
"""
import glob, json, os, re, statistics, sys

d = sys.argv[1]
med = statistics.median


def fmt(v):
    return f"{med(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-"


models = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(f"{d}/*.moe.*.txt")})
print("| model | engine | prefill tok/s median (min-max) | decode tok/s median (min-max) | n |")
print("| --- | --- | --- | --- | --- |")
notes = []
for m in models:
    pp, tg, bpt, gbs = [], [], None, []
    for p in sorted(glob.glob(f"{d}/{m}.moe.*.txt")):
        for line in open(p):
            if line.startswith("{"):
                j = json.loads(line)
                pp += j["prefill_tok_s"]; tg += j["decode_tok_s"]; bpt = j["bytes_per_token"]
    lpp, ltg = [], []
    for p in sorted(glob.glob(f"{d}/{m}.llama.*.json")):
        try:
            for r in json.load(open(p)):
                (lpp if r["n_prompt"] else ltg).extend(r["samples_ts"])
        except Exception:
            pass
    ltgd = []
    for p in sorted(glob.glob(f"{d}/{m}.llamad.*.json")):
        try:
            for r in json.load(open(p)):
                ltgd.extend(r["samples_ts"])
        except Exception:
            pass
    tpp, ttg = [], []
    tp = f"{d}/{m}.torch.txt"
    if os.path.exists(tp):
        for line in open(tp):
            if line.startswith("{") and '"rep"' in line:
                j = json.loads(line); tpp.append(j["prefill_tok_s"]); ttg.append(j["decode_tok_s"])
    for p in glob.glob(f"{d}/{m}.bw.*.txt"):
        for line in open(p):
            mm = re.search(r"RESULT bw .* median=([0-9.]+)", line)
            if mm:
                gbs.append(float(mm.group(1)))
    print(f"| {m} | moe (this engine) | {fmt(pp)} | {fmt(tg)} | {len(pp)} |")
    print(f"| {m} | llama.cpp BF16 | {fmt(lpp)} | {fmt(ltg)} (empty context) | {len(lpp)} |")
    if ltgd:
        print(f"| {m} | llama.cpp BF16, decode at depth 512 | - | {fmt(ltgd)} | {len(ltgd)} |")
    if tpp:
        print(f"| {m} | PyTorch bf16 (decode after 32 steps) | {fmt(tpp)} | {fmt(ttg)} | {len(tpp)} |")
    r = []
    if pp and ltg:
        r.append(f"decode {med(tg) / med(ltg):.2f}x llama.cpp tg (empty context)"
                 + (f", {med(tg) / med(ltgd):.2f}x llama.cpp at depth 512" if ltgd else "")
                 + f", prefill {med(pp) / med(lpp):.2f}x llama.cpp")
    if tpp:
        r.append(f"prefill {med(pp) / med(tpp):.2f}x PyTorch, decode {med(tg) / med(ttg):.2f}x PyTorch")
    if gbs and bpt:
        bw = med(gbs)
        bound = bw * 1e9 / bpt
        r.append(f"read bandwidth {bw:.1f} GB/s (median of {len(gbs)}, {min(gbs):.1f}-{max(gbs):.1f}); "
                 f"{bpt / 1e9:.3f} GB/token -> decode bound {bound:.1f} tok/s; this engine at "
                 f"{100 * med(tg) / bound:.0f}% of it ({med(tg) * bpt / 1e9:.1f} GB/s)")
    notes.append(f"- {m}: " + "; ".join(r))
print()
print("\n".join(notes))
