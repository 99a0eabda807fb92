"""Compressed checkpoints through Python: the project's own `fixtures/quant` (MXFP4, int4, W4A16, W8A16,
FP8) and `../shared/fixtures-quant` (skipped when absent) match the reference at every prefill position
and decode step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import TOL
from safetensors.numpy import load_file

import moe

#: The shared compressed fixtures beside the checkout, or $MOE_QUANT_FIXTURES.
QUANT_FIXTURES = Path(
    os.environ.get("MOE_QUANT_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures-quant")
)
QUANT = ["gpt_oss_mxfp4", "deepseek_v3_int4", "qwen3_moe_w4a16", "deepseek_v3_fp8"]
#: The project's own compressed fixtures (tools/fixture-gen/generate_quant.py).
OWN_QUANT = Path(__file__).resolve().parents[2] / "fixtures" / "quant"


@pytest.mark.parametrize("name", QUANT)
def test_quant_fixture_matches_reference(name):
    d = QUANT_FIXTURES / name
    if not (d / "reference.safetensors").is_file():
        pytest.skip(f"{d} absent")
    check_against_reference(d)


@pytest.mark.parametrize("name", QUANT + ["qwen3_moe_w8a16"])
def test_own_quant_fixture_matches_reference(name):
    check_against_reference(OWN_QUANT / name)


def check_against_reference(d):
    model, ref = moe.Model(d, precision="f32"), load_file(str(d / "reference.safetensors"))
    s = model.session()
    logits = s.prefill(ref["input_ids"], all_logits=True)
    np.testing.assert_allclose(logits, ref["prefill_logits"], rtol=0, atol=TOL)
    for step, token in enumerate(ref["decode_ids"]):
        np.testing.assert_allclose(s.decode(int(token)), ref["decode_logits"][step], rtol=0, atol=TOL)


def test_unsupported_quantization_is_an_error(tmp_path):
    cfg = Path(__file__).resolve().parents[2] / "fixtures" / "qwen3_moe" / "config.json"
    c = json.loads(cfg.read_text())
    c["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (tmp_path / "config.json").write_text(json.dumps(c))
    with pytest.raises(moe.MoeError, match="gptq"):
        moe.Model(tmp_path)
