#!/usr/bin/env python3
"""Checks a checkpoint written by `examples/quantize` with compressed-tensors' own code.

For every module stored as `weight_packed`, against the original float checkpoint:
- unpacks the codes with compressed_tensors' `unpack_from_int32`, dequantizes them exactly
  (`code * scale` in f32) and checks the result lies within half a quantization step of the
  original weight, plus what rounding the quotient to bf16/f16 adds (`|w / scale| * 2^-8` of a
  step), as compressed-tensors itself divides in the weight's dtype; compressed-tensors' own
  `dequantize` (which multiplies in the scale's dtype, rounding once more) is reported beside it;
- recomputes the scales with `calculate_qparams` and the codes with `quantize` (what llm-compressor
  writes for the same weights) and counts the scales and codes that differ (expected: none);
- checks `quantization_config` parses as compressed-tensors' `QuantizationConfig`.

Usage: python tools/check_quantized.py ORIGINAL_DIR QUANTIZED_DIR
(needs torch, safetensors and compressed-tensors; exits 1 on any failure)
"""

import json
import os
import sys

import torch
from safetensors import safe_open
from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig
from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
from compressed_tensors.quantization.utils import calculate_qparams


def tensors(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    out = {}
    for f in files:
        h = safe_open(os.path.join(d, f), framework="pt")
        for k in h.keys():
            out[k] = (h, k)
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    orig_dir, q_dir = sys.argv[1:]
    cfg = json.load(open(os.path.join(q_dir, "config.json")))["quantization_config"]
    qc = QuantizationConfig.model_validate(cfg)
    w_args = next(iter(qc.config_groups.values())).weights
    args = QuantizationArgs(num_bits=w_args.num_bits, type="int", symmetric=True,
                            strategy="group", group_size=w_args.group_size)
    bits, g = args.num_bits, args.group_size
    orig, quant = tensors(orig_dir), tensors(q_dir)
    get = lambda m, k: m[k][0].get_tensor(m[k][1])
    modules = sorted(k[: -len(".weight_packed")] for k in quant if k.endswith(".weight_packed"))
    total = over_half = over_bound = scale_diff = code_diff = 0
    worst = worst_ct = 0.0
    for m in modules:
        w = get(orig, m + ".weight")
        packed, scale = get(quant, m + ".weight_packed"), get(quant, m + ".weight_scale")
        shape = get(quant, m + ".weight_shape")
        codes = unpack_from_int32(packed, bits, torch.Size(shape.tolist()))
        step = scale.float().repeat_interleave(g, dim=1)
        err = (codes.float() * step - w.float()).abs() / step
        deq = dequantize(codes, scale, None, args, dtype=torch.float32).float()
        worst_ct = max(worst_ct, float(((deq - w.float()).abs() / step).max()))
        bound = 0.5 + (w.float().abs() / step + 1) / 256
        total += err.numel()
        over_half += int((err > 0.5 + 1e-6).sum())
        over_bound += int((err > bound + 1e-6).sum())
        worst = max(worst, float(err.max()))
        groups = w.reshape(w.shape[0], -1, g)
        s_ref, z_ref = calculate_qparams(groups.amin(-1), groups.amax(-1), args)
        scale_diff += int((s_ref != scale).sum())
        q_ref = quantize(w, s_ref, z_ref, args, dtype=torch.int8)
        code_diff += int((q_ref != codes).sum())
    ignored = len(cfg.get("ignore", []))
    print(json.dumps({
        "modules": len(modules), "ignored": ignored, "bits": bits, "group_size": g,
        "elements": total, "max_error_steps": round(worst, 4),
        "max_error_steps_ct_dequantize": round(worst_ct, 4),
        "share_within_half_step": round(1 - over_half / max(total, 1), 6),
        "beyond_bound": over_bound, "scales_differing_from_compressed_tensors": scale_diff,
        "codes_differing_from_compressed_tensors": code_diff,
    }))
    return 0 if modules and over_bound == 0 and scale_diff == 0 and code_diff == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
