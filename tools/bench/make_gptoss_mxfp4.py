#!/usr/bin/env python3
"""Write a random-weight gpt-oss-20b-shaped checkpoint cut to a few layers, saved as gpt-oss publishes
it: routed experts in MXFP4 (`<proj>_blocks` u8 [E, out, in/32, 16], two e2m1 codes a byte with the
even element in the low nibble; `<proj>_scales` u8 [E, out, in/32], e8m0 = 2^(s-127)), everything
else bf16, `quantization_config = {quant_method: mxfp4, modules_to_not_convert: [...]}`.

Dimensions are gpt-oss-20b's (hidden 2880, 64 query / 8 KV heads of 64, 32 experts top-4 of width
2880, vocab 201088, alternating 128-token sliding and full attention, YaRN ×32). Codes are uniform
random and scales 2^-8, so weights are about N(0, 0.02) like the peers' random bf16 checkpoints.
The tokenizer is the peers' tiny byte-level BPE (only there so converters find one).

usage: make_gptoss_mxfp4.py OUT [--layers 4]      needs: torch, transformers, safetensors, tokenizers
llama.cpp's converter takes the result: convert_to_gguf.py OUT --outtype bf16 (keeps the MXFP4
experts as MXFP4) with LLAMACPP_PRE=gpt-4o.
"""
import argparse, json, os, sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
STD = 0.02
SCALE_E8M0 = 127 - 8  # 2^-8: |e2m1| ≤ 6 gives |w| ≤ 0.023


def config(n_layers):
    from transformers import GptOssConfig
    c = GptOssConfig(
        vocab_size=201088, hidden_size=2880, intermediate_size=2880, num_hidden_layers=n_layers,
        num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32,
        num_experts_per_tok=4, sliding_window=128, max_position_embeddings=131072,
        rms_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)],
        rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                         "original_max_position_embeddings": 4096, "beta_fast": 32.0,
                         "beta_slow": 1.0, "truncate": False},
    )
    c.architectures = ["GptOssForCausalLM"]
    c.dtype = "bfloat16"
    return c


def tensors(c, g):
    H, V, E, I = c.hidden_size, c.vocab_size, c.num_local_experts, c.intermediate_size
    nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim

    def w(*shape):
        return (torch.randn(*shape, generator=g) * STD).to(torch.bfloat16)

    def mx(e, out, inn):
        blocks = torch.randint(0, 256, (e, out, inn // 32, 16), generator=g, dtype=torch.int32)
        scales = torch.full((e, out, inn // 32), SCALE_E8M0, dtype=torch.int32)
        return blocks.to(torch.uint8), scales.to(torch.uint8)

    yield "model.embed_tokens.weight", w(V, H)
    for l in range(c.num_hidden_layers):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", torch.ones(H, dtype=torch.bfloat16)
        yield p + "post_attention_layernorm.weight", torch.ones(H, dtype=torch.bfloat16)
        for n, rows in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
            yield p + f"self_attn.{n}_proj.weight", w(rows, H)
            yield p + f"self_attn.{n}_proj.bias", w(rows)
        yield p + "self_attn.o_proj.weight", w(H, nh * hd)
        yield p + "self_attn.o_proj.bias", w(H)
        yield p + "self_attn.sinks", w(nh)
        yield p + "mlp.router.weight", w(E, H)
        yield p + "mlp.router.bias", w(E)
        b, s = mx(E, 2 * I, H)
        yield p + "mlp.experts.gate_up_proj_blocks", b
        yield p + "mlp.experts.gate_up_proj_scales", s
        yield p + "mlp.experts.gate_up_proj_bias", w(E, 2 * I)
        b, s = mx(E, H, I)
        yield p + "mlp.experts.down_proj_blocks", b
        yield p + "mlp.experts.down_proj_scales", s
        yield p + "mlp.experts.down_proj_bias", w(E, H)
    yield "model.norm.weight", torch.ones(H, dtype=torch.bfloat16)
    yield "lm_head.weight", w(V, H)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=20)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "tools", "peers"))
    from make_random_moe import write_tokenizer

    os.makedirs(a.out, exist_ok=True)
    c = config(a.layers)
    ids = write_tokenizer(a.out, ["<|startoftext|>", "<|endoftext|>", "<|return|>"],
                          "<|startoftext|>", "<|endoftext|>")
    c.bos_token_id, c.eos_token_id = ids["<|startoftext|>"], ids["<|endoftext|>"]
    c.save_pretrained(a.out)
    cj = os.path.join(a.out, "config.json")
    d = json.load(open(cj))
    d["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
    }
    json.dump(d, open(cj, "w"), indent=2, sort_keys=True)
    g = torch.Generator().manual_seed(a.seed)
    shard, shards, size, weight_map = {}, [], 0, {}

    def flush():
        nonlocal shard, size
        if shard:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(shard, os.path.join(a.out, name), metadata={"format": "pt"})
            shards.append(name)
            for k in shard:
                weight_map[k] = name
            print(f"wrote {name} ({size / 1e9:.2f} GB)", flush=True)
        shard, size = {}, 0

    total = 0
    for name, t in tensors(c, g):
        shard[name] = t
        size += t.numel() * t.element_size()
        total += t.numel() * t.element_size()
        if size > 2 * 1024**3:
            flush()
    flush()
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
    print(f"{a.out}: {total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
