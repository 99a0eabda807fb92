"""Quantization through Python: `moe.Model(..., quantize=)` loads the demo model as int4/int8,
`moe.quantize_checkpoint` writes a checkpoint that reloads to the same logits and generates, bad
options raise, and `moe.fidelity` reports q8 closer to the original than q4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import moe

DEMO = Path(__file__).resolve().parents[2] / "models" / "tiny-deepseek-pycode"
PROMPT = [483, 288, 1438, 270, 1183, 512, 8, 78, 308, 199, 258]


def test_quantize_on_load_save_reload_generate(tmp_path):
    q = moe.Model(DEMO, quantize="q4", quantize_scope="linear")
    plain = moe.Model(DEMO)
    on_load = q.session().prefill(PROMPT, all_logits=True)
    assert not np.array_equal(on_load, plain.session().prefill(PROMPT, all_logits=True))
    calls = []
    out = tmp_path / "q4"
    summary = moe.quantize_checkpoint(DEMO, out, "q4", scope="linear", progress=lambda d, t: calls.append((d, t)))
    assert summary["quantized"] > 0 and summary["shards"] == 1 and summary["ungrouped"] == []
    assert calls and calls[-1][0] == calls[-1][1]
    cfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert cfg["format"] == "pack-quantized" and cfg["config_groups"]["group_0"]["weights"]["num_bits"] == 4
    reloaded = moe.Model(out)
    np.testing.assert_array_equal(reloaded.session().prefill(PROMPT, all_logits=True), on_load)
    text = "".join(reloaded.generate("def fibonacci(n):\n    ", max_new_tokens=16))
    assert text == "".join(q.generate("def fibonacci(n):\n    ", max_new_tokens=16)) and text
    with pytest.raises(moe.UnsupportedQuantizationError):
        moe.Model(out, quantize="q8")
    with pytest.raises(moe.InvalidArgumentError):
        moe.quantize_checkpoint(DEMO, out)  # not empty


def test_bad_quantize_options_raise():
    with pytest.raises(ValueError):
        moe.Model(DEMO, quantize="q3")
    with pytest.raises(ValueError):
        moe.Model(DEMO, group_size=64)  # without quantize
    with pytest.raises(moe.InvalidArgumentError):
        moe.Model(DEMO, quantize="q4", group_size=12)
    with pytest.raises(moe.InvalidArgumentError):
        moe.Model(DEMO, quantize="q4", quantize_scope="everything")


def test_fidelity_q8_closer_than_q4():
    ref = moe.Model(DEMO, precision="f32")
    text = (DEMO.parents[1] / "examples" / "data" / "fidelity.txt").read_text()
    ids = ref.tokenizer.encode(text, add_special_tokens=False)[:128]
    same = moe.fidelity(ref, ref, ids)
    assert same["kl_mean"] == 0 and same["top1_agreement"] == 1 and same["tokens"] == len(ids)
    q8 = moe.fidelity(ref, moe.Model(DEMO, quantize="q8", precision="f32"), ids)
    q4 = moe.fidelity(ref, moe.Model(DEMO, quantize="q4", precision="f32"), ids)
    assert 0 < q8["kl_mean"] < q4["kl_mean"]
    assert q4["bytes_per_token"] < q8["bytes_per_token"] < q8["bytes_per_token_ref"]
    with pytest.raises(moe.InvalidArgumentError):
        moe.fidelity(ref, ref, [1])
