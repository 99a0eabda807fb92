#!/usr/bin/env python3
"""Generate the project's own reference fixtures for the `moe` engine.

For every model family this script

1. builds a tiny configuration in code (transformers-5 keyword style),
2. initialises random weights from a fixed seed (scaled so that logits are O(1..5); norm weights, biases,
   `e_score_correction_bias` and attention sinks are perturbed away from their trivial init values),
3. saves the model with `save_pretrained` in bf16 (per-expert tensor names where the published
   checkpoints use them; sharded for deepseek_v3, glm4_moe and llama4_text),
4. rewrites `config.json` in the key style of the published checkpoints (`rope_theta`, `rope_scaling`,
   `torch_dtype`, published expert-count keys, ...),
5. reads the bf16 checkpoint back in float32 and records what transformers computes:
   `input_ids`, `prefill_logits`, `hidden_states`, `decode_ids`, `decode_logits` (reference.safetensors)
   plus metadata (reference.json).

Seeds are re-drawn (seed + 1, + 2, ...) when a sparse-attention indexer selection or a greedy decode
choice is within `MARGIN` of a tie, or an MoE expert/group selection within `ROUTER_MARGIN` (so an engine
computing in f32 cannot legitimately disagree), or when the greedy continuation contains the EOS token (so
an engine that stops at EOS still emits all of it).

Usage:  python generate.py --out fixtures [--only FAMILY ...]
Requires exactly the versions pinned in requirements.txt (checked at start-up).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

EXPECTED_TRANSFORMERS = "5.23.0"
EXPECTED_TORCH = "2.15.0"

BASE_SEED = 20260
PROMPT_LEN = 24
DECODE_LEN = 8
MARGIN = 1e-3  # minimum allowed gap for DSA top-k selections and greedy decode choices
MAX_RESEEDS = 50
ROUTER_MARGIN = 1e-4  # minimum allowed gap for MoE expert/group selections (see RouterMarginRecorder)

# Initialisation scales (see README.md).
EMBED_STD = 0.5
NORM_WEIGHT_STD = 0.2  # norm weights are 1 + NORM_WEIGHT_STD * N(0, 1)
BIAS_STD = 0.2  # every bias (linear, LayerNorm, expert biases, router bias)
SCORE_BIAS_STD = 0.2  # e_score_correction_bias
SINK_STD = 0.8  # gpt-oss attention sinks (logit units)

COMMON = dict(vocab_size=256, hidden_size=64, tie_word_embeddings=False)

# --------------------------------------------------------------------------------------------------------
# Family specifications.
#   kwargs:     transformers-5 style config keywords (rope goes through `rope_parameters`)
#   published:  how to rewrite the native config.json into the published key style
#   shard:      max_shard_size for families that must be sharded
#   fused_in_out: fused expert tensors are stored [E, in, out] (gpt-oss, Llama 4) rather than [E, out, in]
# --------------------------------------------------------------------------------------------------------
FAMILIES: dict[str, dict] = {
    "deepseek_v3": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            q_lora_rank=40,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            n_routed_experts=12,
            n_shared_experts=1,
            num_experts_per_tok=3,
            n_group=4,
            topk_group=2,
            norm_topk_prob=True,
            routed_scaling_factor=1.8,
            first_k_dense_replace=1,
            rope_interleave=True,
            max_position_embeddings=64,
            rms_norm_eps=1e-6,
            rope_parameters=dict(
                rope_type="yarn",
                rope_theta=10000.0,
                factor=8.0,
                original_max_position_embeddings=8,
                beta_fast=32.0,
                beta_slow=1.0,
                mscale=1.0,
                mscale_all_dim=1.0,
            ),
        ),
        router="noaux",
        published=dict(extra=dict(topk_method="noaux_tc", scoring_func="sigmoid", moe_layer_freq=1)),
        shard="200KB",
    ),
    "deepseek_v2": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            q_lora_rank=None,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            n_routed_experts=8,
            n_shared_experts=2,
            num_experts_per_tok=2,
            n_group=1,
            topk_group=1,
            topk_method="greedy",
            norm_topk_prob=False,
            routed_scaling_factor=1.5,
            first_k_dense_replace=1,
            max_position_embeddings=64,
            rms_norm_eps=1e-6,
            rope_parameters=dict(
                rope_type="yarn",
                rope_theta=10000.0,
                factor=4.0,
                original_max_position_embeddings=16,
                beta_fast=32.0,
                beta_slow=1.0,
                mscale=0.707,
                mscale_all_dim=0.707,
            ),
        ),
        router="softmax",
        published=dict(extra=dict(scoring_func="softmax", moe_layer_freq=1)),
    ),
    "deepseek_v32": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            q_lora_rank=48,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            n_routed_experts=8,
            n_shared_experts=1,
            num_experts_per_tok=2,
            n_group=4,
            topk_group=2,
            norm_topk_prob=True,
            routed_scaling_factor=2.5,
            first_k_dense_replace=1,
            index_topk=8,
            index_n_heads=8,
            index_head_dim=24,
            max_position_embeddings=64,
            rms_norm_eps=1e-6,
            rope_parameters=dict(
                rope_type="yarn",
                rope_theta=10000.0,
                factor=4.0,
                original_max_position_embeddings=16,
                beta_fast=32.0,
                beta_slow=1.0,
                mscale=1.0,
                mscale_all_dim=1.0,
            ),
        ),
        router="noaux",
        published=dict(extra=dict(topk_method="noaux_tc", scoring_func="sigmoid", moe_layer_freq=1)),
        dsa=True,
    ),
    "glm_moe_dsa": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            q_lora_rank=48,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=24,
            n_routed_experts=8,
            n_shared_experts=1,
            num_experts_per_tok=2,
            n_group=2,
            topk_group=1,
            norm_topk_prob=True,
            routed_scaling_factor=2.5,
            first_k_dense_replace=1,
            index_topk=8,
            index_n_heads=8,
            index_head_dim=16,
            # layer i is "full" iff max(i - offset + 1, 0) % freq == 0  ->  full, full, shared, shared
            index_topk_freq=3,
            index_skip_topk_offset=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        router="noaux",
        published=dict(),
        dsa=True,
    ),
    "glm4_moe": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            attention_bias=True,
            use_qk_norm=True,
            n_routed_experts=8,
            n_shared_experts=1,
            num_experts_per_tok=2,
            n_group=2,
            topk_group=1,
            norm_topk_prob=True,
            routed_scaling_factor=2.5,
            first_k_dense_replace=1,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0, partial_rotary_factor=0.5),
        ),
        router="noaux",
        published=dict(),
        shard="200KB",
    ),
    "gpt_oss": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            num_local_experts=8,
            num_experts_per_tok=3,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"] * 2,
            attention_bias=True,
            swiglu_limit=2.0,
            max_position_embeddings=64,
            rms_norm_eps=1e-5,
            rope_parameters=dict(
                rope_type="yarn",
                rope_theta=150000.0,
                factor=4.0,
                original_max_position_embeddings=16,
                beta_fast=32.0,
                beta_slow=1.0,
                truncate=False,
            ),
        ),
        router="logits",
        published=dict(),
        fused_in_out=True,
    ),
    "llama4_text": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=32,
            intermediate_size_mlp=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            num_local_experts=4,
            num_experts_per_tok=1,
            interleave_moe_layer_step=2,  # layers 1 and 3 are MoE, 0 and 2 dense
            use_qk_norm=True,
            no_rope_layer_interval=4,  # layer 3 is NoPE (full attention + temperature tuning)
            attention_chunk_size=8,
            attn_temperature_tuning=True,
            floor_scale=8,
            attn_scale=0.1,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters=dict(
                rope_type="llama3",
                rope_theta=500000.0,
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
        router="logits",
        published=dict(),
        shard="150KB",
        fused_in_out=True,
    ),
    "minimax_m2": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            num_local_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            bos_token_id=1,
            eos_token_id=2,
            rope_parameters=dict(rope_type="default", rope_theta=5000000.0, partial_rotary_factor=0.5),
        ),
        # MiniMax-M2's published config expresses partial RoPE as `rotary_dim` and carries flags that
        # transformers ignores (it hard-codes the behaviour they describe).
        router="sigmoid_bias",
        published=dict(
            rotary_dim=True,
            extra=dict(
                use_qk_norm=True,
                qk_norm_type="per_layer",
                scoring_func="sigmoid",
                use_routing_bias=True,
                shared_intermediate_size=0,
            ),
        ),
    ),
    "mixtral": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=6,
            num_experts_per_tok=2,
            sliding_window=None,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        router="softmax",
        published=dict(),
    ),
    "qwen2_moe": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_experts=8,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            qkv_bias=True,
            use_sliding_window=False,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        router="softmax",
        published=dict(experts_key="num_experts"),
    ),
    "qwen3_moe": dict(
        kwargs=dict(
            COMMON,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,  # != hidden_size / num_attention_heads, as in the published Qwen3 MoE models
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            use_sliding_window=False,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        router="softmax",
        published=dict(experts_key="num_experts"),
        tf5style="qwen3_moe_tf5style",
    ),
    # Qwen3.5-MoE: gated DeltaNet linear attention interleaved with gated full attention. The prompt
    # (80 tokens) crosses the 64-token chunks of transformers' chunked delta rule; both layer types
    # alternate; key and value head dims differ (16 vs 8) so a transposed recurrent state shows.
    "qwen3_5_moe": dict(
        model_type="qwen3_5_moe_text",
        kwargs=dict(
            COMMON,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            linear_key_head_dim=16,
            linear_value_head_dim=8,
            linear_conv_kernel_dim=4,
            layer_types=["linear_attention", "full_attention"] * 2,
            num_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25),
        ),
        router="softmax",
        published=dict(experts_key="num_experts"),
        prompt_len=80,
        zero_centered_norms=True,
        wrapper="qwen3_5_moe_wrapped",
    ),
    # DeepSeek V4: every attention type (sliding only, compressed sparse with a lightning indexer,
    # heavily compressed), hash-routed and learned MoE layers, two hyper-connection streams. The
    # 64-token prompt closes 16 sparse windows of 4 (the indexer keeps 4 of up to 16) and 8 heavy
    # windows of 8; decoding continues the windows across calls. The published config is in the
    # legacy flat style (`compress_ratios`, `num_hash_layers`, `qk_rope_head_dim`, `rope_scaling` for
    # the compressed layers' YaRN, `compress_rope_theta`).
    "deepseek_v4": dict(
        model_type="deepseek_v4",
        kwargs=dict(
            COMMON,
            moe_intermediate_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=32,
            q_lora_rank=48,
            o_groups=2,
            o_lora_rank=16,
            sliding_window=8,
            layer_types=[
                "sliding_attention",
                "compressed_sparse_attention",
                "heavily_compressed_attention",
                "compressed_sparse_attention",
            ],
            compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
            mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe"],
            n_routed_experts=8,
            n_shared_experts=1,
            num_experts_per_tok=2,
            routed_scaling_factor=1.5,
            swiglu_limit=1.0,
            index_n_heads=4,
            index_head_dim=16,
            index_topk=4,
            hc_mult=2,
            hc_sinkhorn_iters=20,
            partial_rotary_factor=0.25,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            rope_parameters=dict(
                main=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25),
                compress=dict(
                    rope_type="yarn",
                    rope_theta=160000.0,
                    partial_rotary_factor=0.25,
                    factor=4.0,
                    original_max_position_embeddings=32,
                    beta_fast=32.0,
                    beta_slow=1.0,
                    attention_factor=1.0,
                ),
            ),
        ),
        router="sqrtsoftplus",
        published=dict(v4_legacy=True),
        prompt_len=64,
        dsa=True,
    ),
}

FAMILY_ORDER = [
    "deepseek_v2",
    "deepseek_v3",
    "deepseek_v32",
    "glm_moe_dsa",
    "glm4_moe",
    "gpt_oss",
    "llama4_text",
    "minimax_m2",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "qwen3_5_moe",
    "deepseek_v4",
]


# --------------------------------------------------------------------------------------------------------
# Weight initialisation
# --------------------------------------------------------------------------------------------------------
def checkpoint_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Everything that goes into the checkpoint: parameters plus persistent buffers."""
    sd_names = set(model.state_dict().keys())
    tensors = dict(model.named_parameters())
    for name, buf in model.named_buffers():
        if name in sd_names and name not in tensors:
            tensors[name] = buf
    if set(tensors) != sd_names:
        raise RuntimeError(f"unexpected state dict entries: {sorted(sd_names ^ set(tensors))}")
    return tensors


def init_weights(
    model: torch.nn.Module, gen: torch.Generator, fused_in_out: bool, zero_centered_norms: bool = False
) -> dict[str, int]:
    """Overwrite every parameter and persistent buffer deterministically, visiting them in sorted-name order.

    (`e_score_correction_bias` is a persistent buffer in several families, not a parameter.)
    `zero_centered_norms`: the model's RMSNorms compute `x * (1 + w)` (Qwen3.5), so their weights are drawn
    around 0 instead of 1 (the gated norm of the linear attention, `linear_attn.norm`, is a plain one)."""
    counts: dict[str, int] = {}
    params = checkpoint_tensors(model)
    for name in sorted(params):
        p = params[name]
        shape = tuple(p.shape)
        leaf = name.rsplit(".", 1)[-1]
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name.startswith("model.visual."):
            kind, val = "vision", noise * 0.02  # a tower the text engine skips
        elif leaf == "tid2eid":
            # DeepSeek V4 hash routing: distinct random experts per token id.
            n_exp = model.config.n_routed_experts
            val = torch.stack([torch.randperm(n_exp, generator=gen)[: shape[1]] for _ in range(shape[0])])
            with torch.no_grad():
                p.copy_(val.to(p.dtype))
            counts["tid2eid"] = counts.get("tid2eid", 0) + 1
            continue
        elif leaf in ("fn", "hc_fn"):
            kind, val = "hc_fn", noise / math.sqrt(shape[1])  # hyper-connection projections
        elif leaf in ("base", "hc_base"):
            kind, val = "hc_base", noise * 0.5
        elif leaf in ("scale", "hc_scale"):
            kind, val = "hc_scale", 1.0 + noise * NORM_WEIGHT_STD
        elif leaf == "position_bias":
            kind, val = "position_bias", noise * 0.5  # compressor gate bias per window slot
        elif name.endswith("embed_tokens.weight"):
            kind, val = "embedding", noise * EMBED_STD
        elif leaf == "e_score_correction_bias":
            kind, val = "score_bias", noise * SCORE_BIAS_STD
        elif leaf == "sinks":
            kind, val = "sinks", noise * SINK_STD
        elif leaf == "bias" or leaf.endswith("_bias"):
            kind, val = "bias", noise * BIAS_STD
        elif leaf == "A_log":
            kind, val = "a_log", 0.5 * noise  # decay rate exp(A_log) around 1
        elif "norm" in name and leaf == "weight" and len(shape) == 1:
            if zero_centered_norms and not name.endswith("linear_attn.norm.weight"):
                kind, val = "norm_zero_centered", noise * NORM_WEIGHT_STD
            else:
                kind, val = "norm", 1.0 + noise * NORM_WEIGHT_STD
        elif leaf == "weight" and len(shape) == 3 and shape[1] == 1:
            kind, val = "conv", noise / math.sqrt(shape[2])  # depthwise conv1d [C, 1, K]
        elif leaf == "weight" and len(shape) == 2:
            kind, val = "linear", noise / math.sqrt(shape[1])  # nn.Linear weight [out, in]
        elif len(shape) == 3 and leaf in ("gate_up_proj", "down_proj"):
            fan_in = shape[1] if fused_in_out else shape[2]
            kind, val = "experts", noise / math.sqrt(fan_in)
        else:
            raise RuntimeError(f"do not know how to initialise parameter {name} {shape}")
        with torch.no_grad():
            p.copy_(val.to(p.dtype))
        counts[kind] = counts.get(kind, 0) + 1
    return counts


# --------------------------------------------------------------------------------------------------------
# Config rewriting
# --------------------------------------------------------------------------------------------------------
def published_config(native: dict, fam: str, spec: dict) -> dict:
    """Rewrite the config.json written by transformers 5 into the published key style."""
    pub = spec.get("published", {})
    c = copy.deepcopy(native)
    c.pop("dtype", None)
    c["torch_dtype"] = "bfloat16"
    if pub.get("v4_legacy"):
        return v4_legacy_config(c)
    rp = dict(c.pop("rope_parameters"))
    c["rope_theta"] = rp.pop("rope_theta")
    prf = rp.pop("partial_rotary_factor", None)
    if prf is not None:
        if pub.get("rotary_dim"):
            c["rotary_dim"] = int(round(prf * c["head_dim"]))
        else:
            c["partial_rotary_factor"] = prf
    rope_type = rp.get("rope_type", "default")
    if rope_type == "default" and set(rp) <= {"rope_type"}:
        c["rope_scaling"] = None
    else:
        rp["type"] = rope_type
        c["rope_scaling"] = dict(sorted(rp.items()))
    key = pub.get("experts_key")
    if key and key not in c:
        c[key] = c.pop("num_local_experts")
    for k, v in pub.get("extra", {}).items():
        c[k] = v
    return dict(sorted(c.items()))


def v4_legacy_config(c: dict) -> dict:
    """DeepSeek V4 in the legacy flat key style its own configs use: `compress_ratios` (0 / 4 / 128 per
    layer) with `compress_rate_csa` / `compress_rate_hca`, `num_hash_layers`, `qk_rope_head_dim`,
    `rope_theta` + `compress_rope_theta` and the compressed layers' YaRN as `rope_scaling`."""
    rp = c.pop("rope_parameters")
    main, comp = rp["main"], rp["compress"]
    c["rope_theta"] = main["rope_theta"]
    c["compress_rope_theta"] = comp["rope_theta"]
    c.pop("partial_rotary_factor", None)
    c["qk_rope_head_dim"] = int(main["partial_rotary_factor"] * c["head_dim"])
    scaling = {k: v for k, v in comp.items() if k not in ("rope_theta", "partial_rotary_factor", "attention_factor")}
    scaling["type"] = scaling["rope_type"]
    c["rope_scaling"] = dict(sorted(scaling.items()))
    marker = {"sliding_attention": 0, "compressed_sparse_attention": 4, "heavily_compressed_attention": 128}
    c["compress_ratios"] = [marker[t] for t in c.pop("layer_types")]
    rates = c.pop("compress_rates")
    c["compress_rate_csa"] = rates["compressed_sparse_attention"]
    c["compress_rate_hca"] = rates["heavily_compressed_attention"]
    mlp = c.pop("mlp_layer_types")
    n_hash = mlp.count("hash_moe")
    if mlp != ["hash_moe"] * n_hash + ["moe"] * (len(mlp) - n_hash):
        raise RuntimeError("hash layers must lead to be written as num_hash_layers")
    c["num_hash_layers"] = n_hash
    c["scoring_func"] = "sqrtsoftplus"
    return dict(sorted(c.items()))


# --------------------------------------------------------------------------------------------------------
# Reference computation
# --------------------------------------------------------------------------------------------------------
class IndexerMarginRecorder:
    """Records the smallest gap between the k-th and (k+1)-th indexer score of every DSA top-k selection.

    transformers' indexers end with `index_scores.topk(k, dim=-1)`; we wrap each indexer's forward and
    intercept that one call. Only rows with more than k unmasked keys make a real choice.
    """

    def __init__(self, model: torch.nn.Module):
        self.min_margin = math.inf
        self.rows = 0
        self.calls = 0
        for module in model.modules():
            if type(module).__name__.endswith("Indexer"):
                self._wrap(module)

    def _wrap(self, module):
        orig = module.forward
        rec = self

        def forward(*args, **kwargs):
            real_topk = torch.Tensor.topk

            def topk(t, k, *a, **kw):
                rec._record(t, k)
                return real_topk(t, k, *a, **kw)

            torch.Tensor.topk = topk
            try:
                return orig(*args, **kwargs)
            finally:
                torch.Tensor.topk = real_topk

        module.forward = forward

    def _record(self, scores: torch.Tensor, k: int):
        self.calls += 1
        s = scores.detach().float().reshape(-1, scores.shape[-1])
        valid = torch.isfinite(s) & (s > -1e30)  # masked keys are -inf or finfo.min
        for row, ok in zip(s, valid):
            v = row[ok]
            if v.numel() <= k:
                continue
            top = torch.sort(v, descending=True).values
            self.rows += 1
            self.min_margin = min(self.min_margin, (top[k - 1] - top[k]).item())


class RouterMarginRecorder:
    """Records the smallest gap that decides an MoE routing choice (k-th vs (k+1)-th expert score, and for
    group-limited routers the topk_group-th vs next group score), recomputed in f32 from each router's input.

    scheme: "softmax"   softmax(x W^T) over all experts (Qwen, Mixtral, DeepSeek-V2 greedy)
            "noaux"     sigmoid(x W^T) + e_score_correction_bias, group-limited (DeepSeek-V3/V3.2, GLM)
            "sigmoid_bias"  sigmoid(x W^T) + bias passed by the MoE block (MiniMax-M2)
            "logits"    x W^T (+ router bias) (gpt-oss, Llama 4)
    """

    def __init__(self, model: torch.nn.Module, scheme: str, config):
        self.scheme = scheme
        self.k = config.num_experts_per_tok
        self.n_group = getattr(config, "n_group", None) or 1
        self.topk_group = getattr(config, "topk_group", None) or 1
        self.min_margin = math.inf
        self.routers = 0
        for module in model.modules():
            if "Router" in type(module).__name__:
                module.register_forward_pre_hook(self._hook)
                module.register_forward_hook(self._check)
                self.routers += 1
        self._expected = {}

    @staticmethod
    def _gap(scores: torch.Tensor, k: int) -> torch.Tensor:
        top = torch.sort(scores, dim=-1, descending=True).values
        return top[:, k - 1] - top[:, k]

    @torch.no_grad()
    def _hook(self, module, args):
        x = args[0].detach().float().reshape(-1, module.weight.shape[-1])
        z = x @ module.weight.detach().float().T
        if hasattr(module, "tid2eid"):  # DeepSeek V4 hash routing: the experts are looked up
            self._expected[id(module)] = torch.sort(module.tid2eid[args[1].reshape(-1)].long(), dim=-1).values
            return
        if self.scheme == "sqrtsoftplus":
            s = torch.nn.functional.softplus(z).sqrt()
            b = s + module.e_score_correction_bias.detach().float()
            self.min_margin = min(self.min_margin, self._gap(b, self.k).min().item())
            self._expected[id(module)] = torch.sort(b.topk(self.k, dim=-1).indices, dim=-1).values
            return
        if self.scheme == "softmax":
            gaps = [self._gap(z.softmax(-1), self.k)]
        elif self.scheme == "logits":
            if getattr(module, "bias", None) is not None:
                z = z + module.bias.detach().float()
            gaps = [self._gap(z, self.k)]
        elif self.scheme == "sigmoid_bias":
            gaps = [self._gap(z.sigmoid() + args[1].detach().float(), self.k)]
        elif self.scheme == "noaux":
            b = z.sigmoid() + module.e_score_correction_bias.detach().float()
            gaps = []
            if self.n_group > 1:
                n, e = b.shape
                group = b.view(n, self.n_group, e // self.n_group).topk(2, dim=-1).values.sum(-1)
                gaps.append(self._gap(group, self.topk_group))
                keep = torch.zeros_like(group).scatter_(1, group.topk(self.topk_group, dim=-1).indices, 1.0)
                keep = keep.bool().repeat_interleave(e // self.n_group, dim=1)
                b = b.masked_fill(~keep, -1e9)
            gaps.append(self._gap(b, self.k))
            z = b
        else:
            raise ValueError(self.scheme)
        if self.scheme == "sigmoid_bias":
            z = z.sigmoid() + args[1].detach().float()
        self.min_margin = min([self.min_margin] + [g.min().item() for g in gaps])
        self._expected[id(module)] = torch.sort(z.topk(self.k, dim=-1).indices, dim=-1).values

    @torch.no_grad()
    def _check(self, module, args, output):
        """The recomputed selection must be the one the router made (guards the margin formulas)."""
        if type(output[0]).__name__ != "Tensor" or len(output) not in (2, 3):
            raise RuntimeError(f"unexpected router output from {type(module).__name__}")
        if len(output) == 3:  # (router_logits, weights, indices)
            chosen = output[2]
        else:  # Llama 4: (scores, logits); unselected experts have score sigmoid(-inf) = 0
            chosen = output[0].float().topk(self.k, dim=-1).indices
        chosen = torch.sort(chosen.reshape(-1, self.k).long(), dim=-1).values
        if not torch.equal(chosen, self._expected.pop(id(module))):
            raise RuntimeError(f"router margin recomputation disagrees with {type(module).__name__}")


def greedy_margin(logits: torch.Tensor) -> float:
    top2 = torch.topk(logits, 2).values
    return (top2[0] - top2[1]).item()


@torch.no_grad()
def compute_reference(model, input_ids: torch.Tensor, n_decode: int) -> tuple[dict, dict]:
    T = input_ids.numel()
    out = model(input_ids[None], output_hidden_states=True, use_cache=False)
    prefill_logits = out.logits[0].float()
    layer_states = [h[0].float() for h in out.hidden_states]

    # Cached path: prefill, then feed the greedy continuation one token at a time.
    cached = model(input_ids[None], use_cache=True)
    past = cached.past_key_values
    cache_diff = (cached.logits[0].float() - prefill_logits).abs().max().item()
    last = cached.logits[0, -1].float()
    margins = [greedy_margin(last)]
    decode_ids, decode_logits = [], []
    for _ in range(n_decode):
        nxt = int(torch.argmax(last))
        decode_ids.append(nxt)
        step = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = step.past_key_values
        last = step.logits[0, -1].float()
        decode_logits.append(last)
        margins.append(greedy_margin(last))
    decode_ids_t = torch.tensor(decode_ids, dtype=torch.int64)
    decode_logits_t = torch.stack(decode_logits)

    # Full (uncached) forward over prompt + continuation for the cached-vs-full check.
    # (Same definition as shared/fixtures: full forward vs prefill_logits ++ decode_logits; the cached
    # prefill's own logits are included too.)
    full = model(torch.cat([input_ids, decode_ids_t])[None], use_cache=False).logits[0].float()
    stored = torch.cat([prefill_logits, decode_logits_t])
    cache_diff = max(cache_diff, (full[: T + n_decode] - stored).abs().max().item())

    tensors = {
        "input_ids": input_ids.to(torch.int64).contiguous(),
        "prefill_logits": prefill_logits.contiguous(),
        "decode_ids": decode_ids_t.contiguous(),
        "decode_logits": decode_logits_t.contiguous(),
    }
    if len({tuple(h.shape) for h in layer_states}) == 1:
        tensors["hidden_states"] = torch.stack(layer_states).contiguous()
    else:
        # DeepSeek V4: [T, hc, H] streams between layers, [T, H] after the head: one key per entry.
        for i, h in enumerate(layer_states):
            tensors[f"hidden_states.{i}"] = h.contiguous()
    # greedy_min_margin covers every argmax that produced a decode id (the last decode step's argmax
    # is not used, but counted too, so an engine running greedy for N+1 steps is also safe).
    meta = {
        "logit_scale": prefill_logits.abs().max().item(),
        "cache_vs_full_max_abs_diff": cache_diff,
        "greedy_min_margin": min(margins),
    }
    return tensors, meta


def load_reference_model(path: Path):
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


# --------------------------------------------------------------------------------------------------------
# One family
# --------------------------------------------------------------------------------------------------------
def build_and_save(fam: str, spec: dict, seed: int, out_dir: Path):
    """Build the model for `seed` and save it (bf16, native config.json) into out_dir.

    Returns the config, the bf16-rounded parameters (as f32), the prompt and the init statistics."""
    gen = torch.Generator().manual_seed(seed)
    vocab = spec["kwargs"]["vocab_size"]
    prompt_len = spec.get("prompt_len", PROMPT_LEN)
    prompt = torch.randint(0, vocab, (prompt_len,), generator=gen, dtype=torch.int64)
    torch.manual_seed(seed)
    config = AutoConfig.for_model(spec.get("model_type", fam), **copy.deepcopy(spec["kwargs"]))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    counts = init_weights(
        model, gen, spec.get("fused_in_out", False), spec.get("zero_centered_norms", False)
    )
    model = model.to(torch.bfloat16).eval()
    save_kwargs = {}
    if "shard" in spec:
        save_kwargs["max_shard_size"] = spec["shard"]
    model.save_pretrained(str(out_dir), **save_kwargs)
    # Checkpoint tensors only: casting the module to bf16 also rounded its non-persistent RoPE buffers.
    weights = {k: v.detach().float().clone() for k, v in checkpoint_tensors(model).items()}
    return config, weights, prompt, counts


def base_seed(fam: str) -> int:
    """First seed tried for a family (each family gets its own weights and prompt)."""
    return BASE_SEED + 1000 * FAMILY_ORDER.index(fam)


def generate_family(fam: str, out_root: Path, log) -> None:
    spec = FAMILIES[fam]
    seed = base_seed(fam)
    for attempt in range(MAX_RESEEDS):
        with tempfile.TemporaryDirectory(prefix=f"fixgen-{fam}-") as tmp:
            tmp = Path(tmp)
            config, weights, prompt, counts = build_and_save(fam, spec, seed, tmp)
            native = json.loads((tmp / "config.json").read_text())
            published = published_config(native, fam, spec)
            (tmp / "config.json").write_text(json.dumps(published, indent=2) + "\n")

            ref_model = load_reference_model(tmp)
            recorder = IndexerMarginRecorder(ref_model) if spec.get("dsa") else None
            routers = RouterMarginRecorder(ref_model, spec["router"], ref_model.config)
            if routers.routers == 0:
                raise RuntimeError(f"{fam}: no router module found")
            tensors, meta = compute_reference(ref_model, prompt, DECODE_LEN)

            # Round-trip check: the in-memory model (bf16 weights, computed in f32, built from the
            # transformers-5 kwargs) must agree with the model read back from the published-style files.
            # This catches a published-style key that transformers would silently misread.
            mem = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
            missing, unexpected = mem.load_state_dict(weights, strict=False)
            if missing or unexpected:
                raise RuntimeError(f"{fam}: state dict mismatch {missing} {unexpected}")
            ref_params = checkpoint_tensors(ref_model)
            if set(ref_params) != set(weights):
                raise RuntimeError(f"{fam}: parameter names differ after the save/load round trip")
            for name, p in ref_params.items():
                if not torch.equal(weights[name], p.detach()):
                    raise RuntimeError(f"{fam}: weight {name} differs after the save/load round trip")
            with torch.no_grad():
                mem_logits = mem(prompt[None], use_cache=False).logits[0].float()
            roundtrip = (mem_logits - tensors["prefill_logits"]).abs().max().item()
            if roundtrip > 1e-4:
                raise RuntimeError(f"{fam}: published-style config changes the model (diff {roundtrip})")

            dsa_margin = None
            if recorder is not None:
                dsa_margin = recorder.min_margin
                if recorder.rows == 0:
                    raise RuntimeError(f"{fam}: no indexer selection made a real choice")
            reasons = []
            if dsa_margin is not None and dsa_margin < MARGIN:
                reasons.append(f"dsa margin {dsa_margin:.2e}")
            if routers.min_margin < ROUTER_MARGIN:
                reasons.append(f"router margin {routers.min_margin:.2e}")
            if meta["greedy_min_margin"] < MARGIN:
                reasons.append(f"greedy margin {meta['greedy_min_margin']:.2e}")
            # An engine that stops generating at EOS must still produce all DECODE_LEN tokens.
            eos = native.get("eos_token_id")
            eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
            if eos & set(tensors["decode_ids"].tolist()):
                reasons.append("greedy continuation contains eos_token_id")
            if reasons:
                log(f"  {fam}: seed {seed} rejected ({', '.join(reasons)}), reseeding")
                seed += 1
                continue

            dest = out_root / fam
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            for f in sorted(tmp.iterdir()):
                shutil.copy2(f, dest / f.name)
            save_file(tensors, str(dest / "reference.safetensors"))
            info = {
                "family": fam,
                "seed": seed,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "prompt_len": int(prompt.numel()),
                "decode_len": DECODE_LEN,
                "logit_scale": meta["logit_scale"],
                "cache_vs_full_max_abs_diff": meta["cache_vs_full_max_abs_diff"],
                "greedy_min_margin": meta["greedy_min_margin"],
                "dsa_min_topk_margin": dsa_margin,
                "router_min_margin": routers.min_margin,
                "roundtrip_max_abs_diff": roundtrip,
                "generator": "tools/fixture-gen/generate.py",
            }
            (dest / "reference.json").write_text(json.dumps(info, indent=2) + "\n")
            make_readable(dest)
            log(
                f"  {fam}: seed {seed} logit_scale {meta['logit_scale']:.3f} "
                f"cache_vs_full {meta['cache_vs_full_max_abs_diff']:.2e} "
                f"greedy_margin {meta['greedy_min_margin']:.2e} dsa_margin {dsa_margin} "
                f"router_margin {routers.min_margin:.2e} "
                f"roundtrip {roundtrip:.1e} init {counts}"
            )

            if spec.get("tf5style"):
                write_tf5style(fam, spec, native, dest, out_root / spec["tf5style"], tensors, info, log)
            if spec.get("wrapper"):
                write_wrapper(fam, native, weights, seed, out_root / spec["wrapper"], tensors, info, log)
            return
    raise RuntimeError(f"{fam}: no acceptable seed in {MAX_RESEEDS} attempts")


def write_tf5style(fam, spec, native, src: Path, dest: Path, tensors, info, log):
    """Same model as `src`, with the config.json exactly as transformers 5 writes it natively."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.name.startswith("model") or f.name == "generation_config.json":
            shutil.copy2(f, dest / f.name)
    (dest / "config.json").write_text(json.dumps(native, indent=2, sort_keys=True) + "\n")
    ref_model = load_reference_model(dest)
    t2, meta2 = compute_reference(ref_model, tensors["input_ids"], DECODE_LEN)
    for k in tensors:
        if not torch.equal(t2[k], tensors[k]):
            diff = (t2[k].float() - tensors[k].float()).abs().max().item()
            if diff > 1e-5:
                raise RuntimeError(f"{dest.name}: {k} differs from {fam} by {diff}")
    save_file(t2, str(dest / "reference.safetensors"))
    info2 = dict(info, family=dest.name, config_style="transformers-5 native (rope_parameters, dtype)")
    info2.update(
        logit_scale=meta2["logit_scale"],
        cache_vs_full_max_abs_diff=meta2["cache_vs_full_max_abs_diff"],
        greedy_min_margin=meta2["greedy_min_margin"],
    )
    (dest / "reference.json").write_text(json.dumps(info2, indent=2) + "\n")
    make_readable(dest)
    log(f"  {dest.name}: written (same weights as {fam}, transformers-5 config keys)")


def write_wrapper(fam, native, weights, seed, dest: Path, tensors, info, log):
    """The same text model inside the published multimodal wrapper (Qwen3.5-MoE): `model_type: qwen3_5_moe`
    with the text config under `text_config` (transformers-5 keys, `rope_parameters` with the multimodal
    `mrope_section`, and no `layer_types`: they follow from `full_attention_interval`), weights under
    `model.language_model.`, `lm_head` at the root, and a tiny random vision tower (`model.visual.`) that a
    text engine skips. The reference is recomputed through the wrapper class and must equal the text
    model's."""
    from transformers.models.qwen3_5_moe import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration

    text = {k: v for k, v in native.items() if k not in ("architectures", "dtype", "transformers_version")}
    types = text.pop("layer_types")
    interval = types.index("full_attention") + 1
    if types != ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(len(types))]:
        raise RuntimeError(f"{fam}: layer_types do not follow one full_attention_interval")
    text["full_attention_interval"] = interval
    rotary_half = int(text["head_dim"] * text["rope_parameters"]["partial_rotary_factor"]) // 2
    text["rope_parameters"] = dict(
        text["rope_parameters"],
        mrope_section=[rotary_half - 2 * (rotary_half // 4), rotary_half // 4, rotary_half // 4],
        mrope_interleaved=True,
    )
    vision = dict(
        depth=1,
        hidden_size=16,
        intermediate_size=32,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        num_position_embeddings=16,
        patch_size=4,
        temporal_patch_size=2,
        spatial_merge_size=2,
    )
    torch.manual_seed(seed)
    cfg = Qwen3_5MoeConfig(text_config=copy.deepcopy(text), vision_config=vision)
    model = Qwen3_5MoeForConditionalGeneration(cfg).to(torch.float32)
    gen = torch.Generator().manual_seed(seed + 7)
    wrapped = {}
    for name, p in checkpoint_tensors(model).items():
        if name.startswith("model.language_model."):
            wrapped[name] = weights["model." + name[len("model.language_model.") :]]
        elif name == "lm_head.weight":
            wrapped[name] = weights[name]
        elif not name.startswith("model.visual."):
            raise RuntimeError(f"{fam}: unexpected wrapper tensor {name}")
    if len(wrapped) != len(weights):
        raise RuntimeError(f"{fam}: the wrapper does not hold every text tensor")
    init_weights_vision = {k: v for k, v in checkpoint_tensors(model).items() if k.startswith("model.visual.")}
    with torch.no_grad():
        for name in sorted(init_weights_vision):
            p = init_weights_vision[name]
            p.copy_(torch.randn(tuple(p.shape), generator=gen) * 0.02)
        for name, v in wrapped.items():
            checkpoint_tensors(model)[name].copy_(v)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    model.to(torch.bfloat16).save_pretrained(str(dest))
    written = json.loads((dest / "config.json").read_text())
    written["text_config"].pop("layer_types", None)
    written["text_config"]["full_attention_interval"] = interval
    (dest / "config.json").write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    ref = Qwen3_5MoeForConditionalGeneration.from_pretrained(str(dest), dtype=torch.float32).eval()
    t2, meta2 = compute_reference(ref, tensors["input_ids"], DECODE_LEN)
    for k in tensors:
        diff = (t2[k].float() - tensors[k].float()).abs().max().item()
        if diff > 1e-5:
            raise RuntimeError(f"{dest.name}: {k} differs from {fam} by {diff}")
    save_file(t2, str(dest / "reference.safetensors"))
    info2 = dict(info, family=dest.name, config_style="published multimodal wrapper (text_config)")
    info2.update(
        logit_scale=meta2["logit_scale"],
        cache_vs_full_max_abs_diff=meta2["cache_vs_full_max_abs_diff"],
        greedy_min_margin=meta2["greedy_min_margin"],
    )
    (dest / "reference.json").write_text(json.dumps(info2, indent=2) + "\n")
    make_readable(dest)
    log(f"  {dest.name}: written (same text weights as {fam}, wrapper config and names, vision tower)")


def make_readable(folder: Path):
    for f in folder.iterdir():
        f.chmod(0o644)


def check_versions(allow_other: bool):
    tv = transformers.__version__
    pv = torch.__version__.split("+")[0]
    if tv != EXPECTED_TRANSFORMERS or pv != EXPECTED_TORCH:
        msg = f"need transformers {EXPECTED_TRANSFORMERS} and torch {EXPECTED_TORCH}, have {tv} / {torch.__version__}"
        if not allow_other:
            sys.exit(msg + " (pass --allow-other-versions to go on anyway)")
        print("WARNING: " + msg, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="fixtures", help="output root (default: fixtures)")
    ap.add_argument("--only", nargs="*", choices=FAMILY_ORDER, help="generate only these families")
    ap.add_argument("--allow-other-versions", action="store_true")
    args = ap.parse_args()
    check_versions(args.allow_other_versions)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    fams = args.only or FAMILY_ORDER
    for fam in fams:
        print(f"[{fam}]", flush=True)
        generate_family(fam, out_root, lambda m: print(m, flush=True))
    total = sum(f.stat().st_size for f in out_root.rglob("*") if f.is_file())
    print(f"done: {out_root} holds {total / 1e6:.2f} MB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
