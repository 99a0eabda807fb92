#!/usr/bin/env python3
"""The project's own fixtures in the compressed formats models are published in.

Each takes a base fixture written by generate.py (its bf16 weights, config and prompt), stores some of
its weights compressed the way published checkpoints do, and computes transformers' reference from the
exactly dequantized weights (an f32 twin checkpoint loaded with from_pretrained, float32 arithmetic):

| fixture            | base        | format                                                                |
| ------------------ | ----------- | --------------------------------------------------------------------- |
| gpt_oss_mxfp4      | gpt_oss     | quant_method mxfp4: routed experts as `_blocks`/`_scales` (e2m1, e8m0) |
| deepseek_v3_int4   | deepseek_v3 | compressed-tensors pack-quantized int4, group 32, routed experts only |
| qwen3_moe_w4a16    | qwen3_moe   | the same scheme on every Linear except lm_head and the router         |
| qwen3_moe_w8a16    | qwen3_moe   | int8, channel strategy (one scale per output row), every Linear       |
| deepseek_v3_fp8    | deepseek_v3 | quant_method fp8, 32×32 blocks, partial last blocks (40-row kv_a)     |

The packing is checked by the reference libraries' own code: compressed-tensors' `unpack_from_int32`
and scales reproduce every packed weight of the twin exactly, and transformers loads the MXFP4
checkpoint itself (Mxfp4Config(dequantize=True)) and must give the reference logits. transformers
5.23 cannot run the int4 MoE checkpoints (it leaves fused experts of a pack-quantized checkpoint
unloaded) nor FP8 with partial blocks, so those rely on the twin. reference.json records the checks.

usage: generate_quant.py [--root fixtures] [--only NAME ...]   (after generate.py has written the bases)
"""
import argparse, json, os, re, shutil, sys, tempfile
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import DECODE_LEN, check_versions, compute_reference, load_reference_model, make_readable  # noqa: E402

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def read_all(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.glob("model*.safetensors")):
        with safe_open(str(p), "pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out


# ---- MXFP4 (gpt-oss) --------------------------------------------------------------------------------
def mxfp4(w_out_in: torch.Tensor):
    """w [out, in] → (blocks u8 [out, in/32, 16], scales u8 [out, in/32], dequantized f32 [out, in])."""
    out, inn = w_out_in.shape
    g = w_out_in.float().view(out, inn // 32, 32)
    amax = g.abs().amax(dim=2).clamp(min=2.0**-120)
    e = torch.ceil(torch.log2(amax / 6.0)).clamp(-127, 127)  # 6 · 2^e ≥ amax
    x = g / torch.exp2(e)[:, :, None]
    idx = (x.abs()[..., None] - E2M1).abs().argmin(dim=-1)  # nearest magnitude
    code = idx | ((x < 0) & (idx > 0)).to(torch.int64) << 3
    deq = (E2M1[idx] * torch.where(code >= 8, -1.0, 1.0)) * torch.exp2(e)[:, :, None]
    pairs = code.view(out, inn // 32, 16, 2)
    blocks = (pairs[..., 0] | (pairs[..., 1] << 4)).to(torch.uint8)  # even element in the low nibble
    scales = (e + 127).to(torch.uint8)
    return blocks, scales, deq.view(out, inn)


def make_mxfp4(base: dict, cfg: dict):
    packed, twin = {}, {}
    for k, t in base.items():
        m = re.match(r"(.*mlp\.experts\.)(gate_up_proj|down_proj)$", k)
        if not m:
            packed[k] = twin[k] = t
            continue
        # stored [E, in, out] (transformers' fused layout); blocks are over the transposed [out, in]
        bs, ss, ds = zip(*(mxfp4(t[e].float().t().contiguous()) for e in range(t.shape[0])))
        packed[k + "_blocks"], packed[k + "_scales"] = torch.stack(bs), torch.stack(ss)
        twin[k] = torch.stack([d.t() for d in ds]).contiguous()
    cfg["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
    }
    return packed, twin, {"quantized_tensors": sum(k.endswith("_blocks") for k in packed)}


def check_mxfp4(folder: Path, reference: dict) -> dict:
    """transformers' own MXFP4 loader on the packed checkpoint, dequantizing on the CPU."""
    from transformers import AutoModelForCausalLM, Mxfp4Config
    m = AutoModelForCausalLM.from_pretrained(
        str(folder), quantization_config=Mxfp4Config(dequantize=True), dtype=torch.float32).eval()
    with torch.no_grad():
        got = m(reference["input_ids"][None], use_cache=False).logits[0].float()
    return {"library_check": "transformers Mxfp4Config(dequantize=True) prefill logits",
            "library_check_max_abs_diff": (got - reference["prefill_logits"]).abs().max().item()}


# ---- compressed-tensors pack-quantized ----------------------------------------------------------------
def int_quant(w: torch.Tensor, bits: int, group: int | None):
    """Symmetric integer quantization with compressed-tensors' scale rule (calculate_qparams: scale =
    absmax / ((2^bits - 1) / 2) per group or output row), stored bf16; q = clamp(round(w / scale))
    divided in f32 (compressed-tensors divides bf16 weights in bf16; near ties may round differently,
    which does not matter here: the reference is computed from these very codes)."""
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32
    out, inn = w.shape
    gsz = group or inn
    g = w.float().view(out, inn // gsz, gsz)
    scale = (g.abs().amax(dim=2) / ((2**bits - 1) / 2)).to(torch.bfloat16)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    qmax = (1 << (bits - 1)) - 1
    q = torch.round(g / scale.float()[:, :, None]).clamp(-qmax - 1, qmax)
    deq = (q * scale.float()[:, :, None]).view(out, inn)
    return pack_to_int32(q.to(torch.int8).view(out, inn), bits), scale, deq


def make_packed(base: dict, cfg: dict, *, bits: int, group: int | None, pattern: str, ignore: list):
    packed, twin, n = {}, {}, 0
    for k, t in base.items():
        if not (re.match(pattern, k) and k.endswith(".weight")):
            packed[k] = twin[k] = t
            continue
        mod = k[: -len(".weight")]
        p, s, d = int_quant(t, bits, group)
        packed[mod + ".weight_packed"], packed[mod + ".weight_scale"] = p, s
        packed[mod + ".weight_shape"] = torch.tensor(list(t.shape), dtype=torch.int32)
        twin[k] = d
        n += 1
    weights = {"num_bits": bits, "type": "int", "symmetric": True, "dynamic": False,
               "strategy": "group" if group else "channel", "group_size": group, "actorder": None,
               "observer": "minmax"}
    cfg["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "quantization_status": "compressed", "ignore": ignore,
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights,
                                      "input_activations": None, "output_activations": None}},
    }
    return packed, twin, {"quantized_tensors": n}


def check_packed(packed: dict, twin: dict, bits: int) -> dict:
    """compressed-tensors' own unpacker and scales reproduce every quantized weight of the twin."""
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    worst = 0.0
    for k in packed:
        if not k.endswith(".weight_packed"):
            continue
        mod = k[: -len(".weight_packed")]
        shape = torch.Size(packed[mod + ".weight_shape"].tolist())
        q = unpack_from_int32(packed[k], bits, shape).float()
        s = packed[mod + ".weight_scale"].float()
        deq = (q.view(shape[0], s.shape[1], -1) * s[:, :, None]).view(shape)
        worst = max(worst, (deq - twin[mod + ".weight"].float()).abs().max().item())
    return {"library_check": "compressed-tensors unpack_from_int32 x weight_scale vs the twin",
            "library_check_max_abs_diff": worst}


# ---- FP8 with block scales ----------------------------------------------------------------------------
def fp8_blocks(w: torch.Tensor, b: int):
    out, inn = w.shape
    ro, ci = -(-out // b), -(-inn // b)
    pad = torch.zeros(ro * b, ci * b)
    pad[:out, :inn] = w.float()
    blocks = pad.view(ro, b, ci, b)
    amax = blocks.abs().amax(dim=(1, 3))
    sinv = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    q = (blocks / sinv[:, None, :, None]).view(ro * b, ci * b)[:out, :inn].to(torch.float8_e4m3fn)
    deq = (q.float().view(out, inn)
           * sinv.repeat_interleave(b, 0)[:out].repeat_interleave(b, 1)[:, :inn])
    return q.contiguous(), sinv.contiguous(), deq


def make_fp8(base: dict, cfg: dict, block: int = 32):
    packed, twin, n = {}, {}, 0
    for k, t in base.items():
        if re.match(r"model\.layers\.\d+\..*_proj\.weight$", k):
            q, s, d = fp8_blocks(t, block)
            packed[k], packed[k + "_scale_inv"], twin[k] = q, s, d
            n += 1
        else:
            packed[k] = twin[k] = t
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [block, block]}
    return packed, twin, {"quantized_tensors": n}


FIXTURES = {
    "gpt_oss_mxfp4": ("gpt_oss", make_mxfp4, {}),
    "deepseek_v3_int4": ("deepseek_v3", make_packed, dict(
        bits=4, group=32, pattern=r"model\.layers\.\d+\.mlp\.experts\.\d+\.",
        ignore=["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|down)_proj$",
                "re:.*mlp\\.gate$"])),
    "qwen3_moe_w4a16": ("qwen3_moe", make_packed, dict(
        bits=4, group=32, pattern=r"model\.layers\.\d+\.(self_attn|mlp\.experts\.\d+)\.\w+_proj\.",
        ignore=["lm_head", "re:.*mlp.gate$"])),
    "qwen3_moe_w8a16": ("qwen3_moe", make_packed, dict(
        bits=8, group=None, pattern=r"model\.layers\.\d+\.(self_attn|mlp\.experts\.\d+)\.\w+_proj\.",
        ignore=["lm_head", "re:.*mlp.gate$"])),
    "deepseek_v3_fp8": ("deepseek_v3", make_fp8, {}),
}


def save_checkpoint(tensors: dict, cfg: dict, base_dir: Path, dest: Path):
    dest.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dest / "model.safetensors"),
              metadata={"format": "pt"})
    (dest / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if (base_dir / "generation_config.json").exists():
        shutil.copy2(base_dir / "generation_config.json", dest / "generation_config.json")


def generate(name: str, root: Path, log):
    base_name, make, kw = FIXTURES[name]
    base_dir = root / base_name
    base = read_all(base_dir)
    cfg = json.loads((base_dir / "config.json").read_text())
    base_ref = {}
    with safe_open(str(base_dir / "reference.safetensors"), "pt") as f:
        base_ref = {k: f.get_tensor(k) for k in f.keys()}
    qcfg = dict(cfg)
    packed, twin, info = make(base, qcfg, **kw)
    with tempfile.TemporaryDirectory(prefix=f"fixgen-{name}-") as tmp:
        twin_dir = Path(tmp) / "twin"
        save_checkpoint({k: v.float() for k, v in twin.items()}, cfg, base_dir, twin_dir)
        tensors, meta = compute_reference(load_reference_model(twin_dir), base_ref["input_ids"], DECODE_LEN)
    dest = root / "quant" / name
    if dest.exists():
        shutil.rmtree(dest)
    save_checkpoint(packed, qcfg, base_dir, dest)
    save_file(tensors, str(dest / "reference.safetensors"))
    if make is make_mxfp4:
        info.update(check_mxfp4(dest, tensors))
    elif make is make_packed:
        info.update(check_packed(packed, twin, kw["bits"]))
    else:
        info.update(library_check=None, library_check_max_abs_diff=None,
                    library_check_note="transformers 5.23 cannot run FP8 with partial blocks")
    info.update(family=name, base_family=base_name, transformers=transformers.__version__,
                torch=torch.__version__, prompt_len=int(tensors["input_ids"].numel()),
                decode_len=DECODE_LEN, generator="tools/fixture-gen/generate_quant.py", **meta)
    (dest / "reference.json").write_text(json.dumps(info, indent=2) + "\n")
    make_readable(dest)
    log(f"  {name}: {info['quantized_tensors']} tensors, logit_scale {meta['logit_scale']:.3f}, "
        f"greedy margin {meta['greedy_min_margin']:.2e}, library check {info['library_check_max_abs_diff']}")
    diff = info["library_check_max_abs_diff"]
    if diff is not None and diff > 1e-4:
        raise RuntimeError(f"{name}: the reference library disagrees with the twin by {diff}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="fixtures", help="fixture root holding the base families")
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES))
    ap.add_argument("--allow-other-versions", action="store_true")
    a = ap.parse_args()
    check_versions(a.allow_other_versions)
    transformers.logging.set_verbosity_error()
    root = Path(a.root)
    for name in a.only or sorted(FIXTURES):
        print(f"[{name}]", flush=True)
        generate(name, root, lambda m: print(m, flush=True))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
