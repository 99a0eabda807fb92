#!/usr/bin/env python3
"""Convert a bf16 Hugging Face MoE checkpoint to FP8 e4m3 with block scales, the way DeepSeek V3 and
Qwen3-*-FP8 are published: every `*_proj.weight` of the decoder layers becomes float8_e4m3fn with an
f32 `weight_scale_inv` [ceil(out/B), ceil(in/B)] (w ≈ fp8 · scale_inv per B×B block, scale_inv =
absmax/448); embeddings, norms, routers (`mlp.gate`) and lm_head stay bf16, listed in
`modules_to_not_convert`. config.json gains
`quantization_config = {quant_method: fp8, fmt: e4m3, activation_scheme: dynamic, weight_block_size: [B, B]}`;
the tokenizer and other files are copied. Streams one shard at a time.

usage: to_fp8.py IN OUT [--block 128]      needs: torch, safetensors
"""
import argparse, json, os, re, shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FP8_MAX = 448.0


def quantize_blocks(w, b):
    """w [out, in] (bf16) → (fp8 [out, in], scale_inv f32 [ceil(out/b), ceil(in/b)])."""
    out, inn = w.shape
    ro, ci = -(-out // b), -(-inn // b)
    padded = torch.zeros(ro * b, ci * b, dtype=torch.float32)
    padded[:out, :inn] = w.float()
    blocks = padded.view(ro, b, ci, b)
    absmax = blocks.abs().amax(dim=(1, 3))  # [ro, ci]
    scale_inv = torch.where(absmax > 0, absmax / FP8_MAX, torch.ones_like(absmax))
    q = (blocks / scale_inv[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX)
    q = q.view(ro * b, ci * b)[:out, :inn].to(torch.float8_e4m3fn)
    return q.contiguous(), scale_inv.contiguous()


def converts(name):
    return bool(re.match(r"model\.layers\.\d+\..*_proj\.weight$", name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--block", type=int, default=128)
    a = ap.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    for f in os.listdir(a.src):
        if not f.endswith(".safetensors") and f not in ("config.json", "model.safetensors.index.json"):
            p = os.path.join(a.src, f)
            if os.path.isfile(p):
                shutil.copy(p, os.path.join(a.dst, f))
    shards = sorted(f for f in os.listdir(a.src) if f.endswith(".safetensors"))
    weight_map, keep, total = {}, set(), 0
    for i, shard in enumerate(shards):
        out = {}
        with safe_open(os.path.join(a.src, shard), "pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                if converts(name):
                    q, s = quantize_blocks(t, a.block)
                    out[name], out[name + "_scale_inv"] = q, s
                else:
                    out[name] = t
                    if name.endswith(".weight") and t.dim() == 2:
                        keep.add(name[: -len(".weight")])
        for n, t in out.items():
            weight_map[n] = shard
            total += t.numel() * t.element_size()
        save_file(out, os.path.join(a.dst, shard), metadata={"format": "pt"})
        print(f"[{i + 1}/{len(shards)}] {shard}", flush=True)
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.dst, "model.safetensors.index.json"), "w"), indent=1)
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    cfg["quantization_config"] = {
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
        "weight_block_size": [a.block, a.block], "modules_to_not_convert": sorted(keep),
    }
    json.dump(cfg, open(os.path.join(a.dst, "config.json"), "w"), indent=2, sort_keys=True)
    print(f"wrote {a.dst}: {total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
