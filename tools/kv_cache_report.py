#!/usr/bin/env python3
"""KV cache precision and prefix sharing on a model, through the Python package (docs/performance.md).

Feeds a text (this repository's tools/*.py, tokenized) as a prompt with every position's logits, then
decodes the next tokens teacher-forced, once per cache precision (f32, bf16, int8), and reports the KL
divergence of bf16 and int8 against f32 (mean and max over positions), top-1 agreement and
`kv_cache_bytes`. Then forks one prompt into several conversations and compares the bytes held with
the same conversations as separate sessions.

Usage: python3 tools/kv_cache_report.py [MODEL_DIR]   (default models/tiny-deepseek-pycode; needs the
moe wheel and numpy installed)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import moe

ROOT = Path(__file__).resolve().parents[1]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    lp, lq = log_softmax(p), log_softmax(q)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def main() -> None:
    # The exact mode (the library default is bf16 activations), so the KL is the cache precision alone.
    model = moe.Model(sys.argv[1] if len(sys.argv) > 1 else ROOT / "models/tiny-deepseek-pycode", precision="f32")
    assert model.tokenizer is not None, "the model needs a tokenizer"
    text = "".join(p.read_text() for p in sorted((ROOT / "tools").glob("*.py")))
    ids = model.tokenizer.encode(text)
    for prompt, steps in [(256, 256), (512, 256)]:
        runs = {}
        for dt in ["f32", "bf16", "int8"]:
            s = model.session(kv_dtype=dt)
            pre = s.prefill(ids[:prompt], all_logits=True)
            dec = np.stack([s.decode(t) for t in ids[prompt : prompt + steps]])
            runs[dt] = (pre, dec, s.kv_cache_bytes)
        for dt in ["bf16", "int8"]:
            kp = kl(runs["f32"][0], runs[dt][0])
            kd = kl(runs["f32"][1], runs[dt][1])
            agree = (runs["f32"][1].argmax(-1) == runs[dt][1].argmax(-1)).mean()
            print(
                f"prompt {prompt} + decode {steps}, {dt}: prefill KL mean {kp.mean():.2e} max {kp.max():.2e}; "
                f"decode KL mean {kd.mean():.2e} max {kd.max():.2e}; decode top-1 agreement {agree:.4f}; "
                f"kv_cache_bytes {runs[dt][2]} (f32 {runs['f32'][2]}, x{runs[dt][2] / runs['f32'][2]:.3f})"
            )
    prompt, own, n = 512, 64, 8
    base = model.session()
    base.prefill(ids[:prompt])
    forks = [base.fork() for _ in range(n)]
    for i, f in enumerate(forks):
        for t in ids[prompt + i : prompt + i + own]:
            f.decode(t)
    held = sum(s.kv_cache_bytes - s.kv_cache_shared_bytes for s in [base, *forks])
    held += base.kv_cache_bytes  # the shared prompt, once
    apart = 0
    for i in range(n):
        s = model.session()
        s.prefill(ids[:prompt] + ids[prompt + i : prompt + i + own])
        apart += s.kv_cache_bytes
    print(
        f"{n} conversations of a {prompt}-token prompt + {own} own tokens: {held} cache bytes with "
        f"fork, {apart} as separate sessions (x{held / apart:.3f})"
    )


if __name__ == "__main__":
    main()
