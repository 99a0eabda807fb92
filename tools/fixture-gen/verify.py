#!/usr/bin/env python3
"""Re-run transformers on fixture folders and compare with their stored reference.safetensors.

For each folder: read the bf16 checkpoint in float32 (as generate.py does) and report the largest
absolute difference of
  prefill   one forward over input_ids                          vs prefill_logits
  hidden    the hidden states of that forward                    vs hidden_states
  decode    prefill + single-token cached steps over decode_ids  vs decode_logits
  full      one uncached forward over input_ids + decode_ids     vs prefill_logits ++ decode_logits
and checks that decode_ids is the greedy continuation.

Works on this project's fixtures and on any folder with the same layout (e.g. shared/fixtures).

Usage:  python verify.py ROOT [FAMILY ...]      (default: every sub-folder of ROOT with a config.json)
Exit status 1 if any prefill/hidden/decode difference exceeds --tol (default 1e-4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.dont_write_bytecode = True

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


@torch.no_grad()
def verify(folder: Path) -> dict:
    ref = load_file(str(folder / "reference.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = ref["input_ids"]
    T = ids.numel()
    out = model(ids[None], output_hidden_states=True, use_cache=False)
    prefill = (out.logits[0] - ref["prefill_logits"]).abs().max().item()
    if "hidden_states" in ref:
        hs = torch.stack([h[0] for h in out.hidden_states])
        hidden = (hs - ref["hidden_states"]).abs().max().item()
    else:  # one key per entry (DeepSeek V4's hyper-connection streams)
        hidden = max((h[0] - ref[f"hidden_states.{i}"]).abs().max().item() for i, h in enumerate(out.hidden_states))

    step = model(ids[None], use_cache=True)
    past = step.past_key_values
    greedy_ok = int(step.logits[0, -1].argmax()) == int(ref["decode_ids"][0])
    rows = []
    for i, tok in enumerate(ref["decode_ids"].tolist()):
        step = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
        past = step.past_key_values
        rows.append(step.logits[0, -1])
        if i + 1 < ref["decode_ids"].numel():
            greedy_ok &= int(rows[-1].argmax()) == int(ref["decode_ids"][i + 1])
    decode = (torch.stack(rows) - ref["decode_logits"]).abs().max().item()

    full_logits = model(torch.cat([ids, ref["decode_ids"]])[None], use_cache=False).logits[0]
    expected = torch.cat([ref["prefill_logits"], ref["decode_logits"]])
    full = (full_logits[: expected.shape[0]] - expected).abs().max().item()
    return dict(prefill=prefill, hidden=hidden, decode=decode, full=full, greedy=greedy_ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("families", nargs="*")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    fams = args.families or sorted(p.name for p in args.root.iterdir() if (p / "config.json").exists())
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    bad = 0
    for fam in fams:
        r = verify(args.root / fam)
        ok = max(r["prefill"], r["hidden"], r["decode"]) <= args.tol and r["greedy"]
        bad += not ok
        print(
            f"{fam:22s} prefill {r['prefill']:.3e}  hidden {r['hidden']:.3e}  decode {r['decode']:.3e}  "
            f"full-vs-stored {r['full']:.3e}  greedy {'ok' if r['greedy'] else 'MISMATCH'}  {'OK' if ok else 'FAIL'}",
            flush=True,
        )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
