"""Qwen3.5-MoE through Python: both config styles load and match the reference (also covered by
test_reference's every-family tests), the estimate's cache figure includes the linear layers' fixed
state, and a truncation into a recurrent state raises without changing the session."""

from __future__ import annotations

import numpy as np
import pytest

import moe
from conftest import TOL, fixture_dir, load_model, load_reference


@pytest.mark.parametrize("family", ["qwen3_5_moe", "qwen3_5_moe_wrapped"])
def test_both_config_styles_load(family):
    model = load_model(family)
    assert model.family == "qwen3_5_moe_text"
    ref = load_reference(family)
    s = model.session()
    got = s.prefill(ref["input_ids"], all_logits=True)
    assert np.abs(np.asarray(got) - ref["prefill_logits"]).max() <= TOL


def test_estimate_counts_the_fixed_state():
    ref = load_reference("qwen3_5_moe")
    n = len(ref["input_ids"])
    est = moe.estimate_memory(fixture_dir("qwen3_5_moe"), context=n)
    s = load_model("qwen3_5_moe").session()
    s.prefill(ref["input_ids"])
    assert s.kv_cache_bytes == est["kv_cache_bytes"]
    # Full-attention layers grow per token; the linear layers' state is on top of that.
    assert est["kv_cache_bytes"] > n * est["kv_cache_bytes_per_token"]


def test_truncating_into_the_recurrent_state_raises():
    ref = load_reference("qwen3_5_moe")
    s = load_model("qwen3_5_moe").session()
    s.prefill(ref["input_ids"])
    with pytest.raises(moe.InvalidArgumentError):
        s.truncate(5)
    assert len(s) == len(ref["input_ids"])
    got = s.decode(int(ref["decode_ids"][0]))
    assert np.abs(np.asarray(got) - ref["decode_logits"][0]).max() <= TOL
