#!/usr/bin/env python3
"""Convert a bf16 Hugging Face MoE checkpoint to a compressed-tensors `pack-quantized` W4A16 (or W8A16)
checkpoint, the community format, packing with compressed-tensors' own `pack_to_int32`: symmetric
integer weights per group (scale = absmax / ((2^bits - 1) / 2), as compressed-tensors' calculate_qparams,
stored bf16; q = clamp(round(w / scale))), `weight_packed` i32 [out, in·bits/32], `weight_scale` bf16
[out, in/group], `weight_shape` i32 [2]. Every `*_proj` Linear of the decoder layers is quantized
(`--scope linear`, the default, like the W4A16 fixtures) or only the routed experts (`--scope experts`);
embeddings, norms, routers and lm_head stay bf16 and are named in `ignore`. Streams one shard at a
time. This is an independent writer of the format moe's own `examples/quantize` writes; it divides in
f32 (compressed-tensors divides bf16 weights in bf16, which `examples/quantize` reproduces bit for bit),
so a few near-tie codes differ from those two.

usage: to_w4a16.py IN OUT [--bits 4] [--group 32] [--scope linear|experts]
needs: torch, safetensors, compressed-tensors
"""
import argparse, json, os, re, shutil

import torch
from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32
from safetensors import safe_open
from safetensors.torch import save_file


def quantize(w, bits, group):
    """w [out, in] → (packed i32 [out, in·bits/32], scale bf16 [out, in/group])."""
    out, inn = w.shape
    qmax = (1 << (bits - 1)) - 1
    g = w.float().view(out, inn // group, group)
    scale = (g.abs().amax(dim=2) / ((2**bits - 1) / 2)).to(torch.bfloat16)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.round(g / scale.float()[:, :, None]).clamp(-qmax - 1, qmax).to(torch.int8)
    return pack_to_int32(q.view(out, inn), bits), scale.contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--bits", type=int, choices=(4, 8), default=4)
    ap.add_argument("--group", type=int, default=32)
    ap.add_argument("--scope", choices=("linear", "experts"), default="linear")
    a = ap.parse_args()
    pat = r"model\.layers\.\d+\.mlp\.experts\.\d+\.\w+_proj\.weight$" if a.scope == "experts" \
        else r"model\.layers\.\d+\..*_proj\.weight$"
    os.makedirs(a.dst, exist_ok=True)
    for f in os.listdir(a.src):
        p = os.path.join(a.src, f)
        if os.path.isfile(p) and not f.endswith(".safetensors") and f not in (
                "config.json", "model.safetensors.index.json"):
            shutil.copy(p, os.path.join(a.dst, f))
    shards = sorted(f for f in os.listdir(a.src) if f.endswith(".safetensors"))
    weight_map, ignore, total = {}, set(), 0
    for i, shard in enumerate(shards):
        out = {}
        with safe_open(os.path.join(a.src, shard), "pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                if re.match(pat, name) and t.shape[1] % a.group == 0:
                    m = name[: -len(".weight")]
                    out[m + ".weight_packed"], out[m + ".weight_scale"] = quantize(t, a.bits, a.group)
                    out[m + ".weight_shape"] = torch.tensor(list(t.shape), dtype=torch.int32)
                else:
                    out[name] = t
                    if name.endswith(".weight") and t.dim() == 2 and name != "model.embed_tokens.weight":
                        ignore.add(name[: -len(".weight")])
        for n, t in out.items():
            weight_map[n] = shard
            total += t.numel() * t.element_size()
        save_file(out, os.path.join(a.dst, shard), metadata={"format": "pt"})
        print(f"[{i + 1}/{len(shards)}] {shard}", flush=True)
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.dst, "model.safetensors.index.json"), "w"), indent=1)
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    cfg["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "quantization_status": "compressed",
        "config_groups": {"group_0": {
            "targets": ["Linear"], "input_activations": None, "output_activations": None,
            "weights": {"num_bits": a.bits, "type": "int", "symmetric": True, "strategy": "group",
                        "group_size": a.group, "dynamic": False, "actorder": None,
                        "observer": "minmax"}}},
        # the modules left in bf16, matched exactly (ignoring whole classes of modules by regex works too)
        "ignore": ["lm_head"] + sorted(m for m in ignore if m != "lm_head"),
    }
    json.dump(cfg, open(os.path.join(a.dst, "config.json"), "w"), indent=2, sort_keys=True)
    print(f"wrote {a.dst}: {total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
