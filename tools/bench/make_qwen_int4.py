#!/usr/bin/env python3
"""Write a random-weight Qwen3-30B-A3B-shaped checkpoint (all 48 layers unless --layers) directly in
compressed-tensors `pack-quantized` int4 form, group 32 — what `examples/quantize` would write from the
bf16 original (61 GB, which does not fit this machine's disk) — so the full model size can be loaded
and run without ever holding the bf16 weights.

- `--scope experts` (default): the routed experts packed (`weight_packed` i32 [out, in/8], codes
  uniform, `weight_scale` bf16 [out, in/32] = 0.0043 so weights are about N(0, 0.02), `weight_shape`);
  attention, routers, norms, embeddings and lm_head bf16 N(0, 0.02). About 19.4 GB.
- `--scope linear`: the attention projections packed too (routers, embeddings, lm_head stay bf16).

Random bytes come from one seeded pool, sliced at random offsets, so writing is disk-bound. The tokenizer
files are copied from `--tokenizer-from` (e.g. the peers' 8-layer model).

usage: make_qwen_int4.py OUT [--layers 48] [--scope experts|linear] [--tokenizer-from DIR]
needs: numpy, torch, safetensors
"""
import argparse, json, os, shutil

import numpy as np
import torch
from safetensors.torch import save_file

H, V, NH, NKV, HD, E, I, TOPK = 2048, 151936, 32, 4, 128, 128, 768, 8
GROUP = 32
SHARD = 2 * 1024**3


class Pool:
    """Seeded random bytes, sliced at random offsets (enough entropy for a benchmark, written fast)."""

    def __init__(self, seed, size=256 * 1024**2):
        self.rng = np.random.default_rng(seed)
        self.buf = self.rng.integers(0, 256, size, dtype=np.uint8)

    def bytes(self, n):
        out = np.empty(n, dtype=np.uint8)
        at = 0
        while at < n:
            k = min(n - at, len(self.buf) // 2)
            o = int(self.rng.integers(0, len(self.buf) - k + 1))
            out[at:at + k] = self.buf[o:o + k]
            at += k
        return out

    def bf16_normal(self, shape, std=0.02):
        n = int(np.prod(shape))
        x = (self.rng.standard_normal(n, dtype=np.float32) * std).view(np.uint32)
        return (x >> 16).astype(np.uint16).reshape(shape)


def bf16_const(shape, value):
    return np.full(shape, np.array([value], dtype=np.float32).view(np.uint32)[0] >> 16, dtype=np.uint16)


def packed(pool, out, inn):
    return {
        "weight_packed": pool.bytes(out * inn // 2).view(np.int32).reshape(out, inn // 8),
        "weight_scale": bf16_const((out, inn // GROUP), 0.0043),
        "weight_shape": np.array([out, inn], dtype=np.int32),
    }


def tensors(pool, layers, scope):
    yield "model.embed_tokens.weight", pool.bf16_normal((V, H))
    for l in range(layers):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", bf16_const((H,), 1.0)
        yield p + "post_attention_layernorm.weight", bf16_const((H,), 1.0)
        yield p + "self_attn.q_norm.weight", bf16_const((HD,), 1.0)
        yield p + "self_attn.k_norm.weight", bf16_const((HD,), 1.0)
        for n, (o, i) in {"q": (NH * HD, H), "k": (NKV * HD, H), "v": (NKV * HD, H), "o": (H, NH * HD)}.items():
            name = p + f"self_attn.{n}_proj"
            if scope == "linear":
                for k, t in packed(pool, o, i).items():
                    yield f"{name}.{k}", t
            else:
                yield name + ".weight", pool.bf16_normal((o, i))
        yield p + "mlp.gate.weight", pool.bf16_normal((E, H))
        for e in range(E):
            for n, (o, i) in {"gate": (I, H), "up": (I, H), "down": (H, I)}.items():
                for k, t in packed(pool, o, i).items():
                    yield f"{p}mlp.experts.{e}.{n}_proj.{k}", t
    yield "model.norm.weight", bf16_const((H,), 1.0)
    yield "lm_head.weight", pool.bf16_normal((V, H))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--scope", choices=("experts", "linear"), default="experts")
    ap.add_argument("--tokenizer-from")
    ap.add_argument("--seed", type=int, default=30)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.tokenizer_from:
        for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            src = os.path.join(a.tokenizer_from, f)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(a.out, f))
    ignore = ["lm_head", "re:.*mlp\\.gate$"] + ([] if a.scope == "linear" else ["re:.*self_attn.*"])
    cfg = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": V,
        "hidden_size": H, "intermediate_size": 6144, "moe_intermediate_size": I,
        "num_hidden_layers": a.layers, "num_attention_heads": NH, "num_key_value_heads": NKV,
        "head_dim": HD, "num_experts": E, "num_experts_per_tok": TOPK, "norm_topk_prob": True,
        "decoder_sparse_step": 1, "mlp_only_layers": [], "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False,
        "attention_bias": False, "hidden_act": "silu", "torch_dtype": "bfloat16",
        "use_sliding_window": False, "bos_token_id": 0, "eos_token_id": 1,
        "quantization_config": {
            "quant_method": "compressed-tensors", "format": "pack-quantized",
            "quantization_status": "compressed", "ignore": ignore,
            "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None,
                                          "output_activations": None,
                                          "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                                      "strategy": "group", "group_size": GROUP,
                                                      "dynamic": False, "actorder": None}}},
        },
    }
    if os.path.exists(os.path.join(a.tokenizer_from or "", "config.json")):
        src = json.load(open(os.path.join(a.tokenizer_from, "config.json")))
        cfg["bos_token_id"], cfg["eos_token_id"] = src.get("bos_token_id"), src.get("eos_token_id")
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    pool = Pool(a.seed)
    shard, size, names, weight_map, total = {}, 0, [], {}, 0

    def flush():
        nonlocal shard, size
        if shard:
            name = f"model-{len(names) + 1:05d}.safetensors"
            # bf16 tensors are held as uint16 bit patterns: viewed as torch.bfloat16 to write them.
            as_torch = {
                k: torch.from_numpy(t).view(torch.bfloat16) if t.dtype == np.uint16 else torch.from_numpy(t)
                for k, t in shard.items()
            }
            save_file(as_torch, os.path.join(a.out, name), metadata={"format": "pt"})
            names.append(name)
            for k in shard:
                weight_map[k] = name
            print(f"wrote {name} ({size / 1e9:.2f} GB, {total / 1e9:.1f} GB so far)", flush=True)
        shard, size = {}, 0

    for name, t in tensors(pool, a.layers, a.scope):
        shard[name] = t
        size += t.nbytes
        total += t.nbytes
        if size >= SHARD:
            flush()
    flush()
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
    print(f"{a.out}: {total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
