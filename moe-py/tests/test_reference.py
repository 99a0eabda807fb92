"""The fixtures through Python match the reference implementation (prefill, decode, greedy generation)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAMILIES, REQUIRED_FAMILIES, TOL, load_model, load_reference


def test_required_families_present():
    missing = sorted(set(REQUIRED_FAMILIES) - set(FAMILIES))
    assert not missing, f"fixtures missing for {missing}"


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_all_logits_match(family):
    model, ref = load_model(family), load_reference(family)
    s = model.session()
    logits = s.prefill(ref["input_ids"], all_logits=True)
    want = ref["prefill_logits"]
    assert isinstance(logits, np.ndarray)
    assert logits.dtype == np.float32
    assert logits.shape == want.shape == (len(ref["input_ids"]), model.vocab_size)
    np.testing.assert_allclose(logits, want, rtol=0, atol=TOL)
    assert len(s) == len(ref["input_ids"])


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_last_then_decode_match(family):
    model, ref = load_model(family), load_reference(family)
    s = model.session()
    last = s.prefill(ref["input_ids"].tolist())
    assert last.dtype == np.float32
    assert last.shape == (model.vocab_size,)
    np.testing.assert_allclose(last, ref["prefill_logits"][-1], rtol=0, atol=TOL)
    for step, token in enumerate(ref["decode_ids"]):
        logits = s.decode(int(token))
        assert logits.shape == (model.vocab_size,)
        np.testing.assert_allclose(logits, ref["decode_logits"][step], rtol=0, atol=TOL)
    assert len(s) == len(ref["input_ids"]) + len(ref["decode_ids"])


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generate_is_reference_continuation(family):
    model, ref = load_model(family), load_reference(family)
    want = ref["decode_ids"].tolist()
    stream = model.generate(ref["input_ids"], max_new_tokens=len(want), temperature=0.0, ignore_eos=True)
    got = list(stream)
    assert got == want
    assert all(type(t) is int for t in got)
    assert stream.tokens == want
    assert stream.produced == len(want)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32, np.uint16])
def test_numpy_dtypes_and_lists_agree(dtype):
    model, ref = load_model("qwen3_moe"), load_reference("qwen3_moe")
    ids = ref["input_ids"]
    a = model.session().prefill(ids.astype(dtype))
    b = model.session().prefill([int(t) for t in ids])
    c = model.session().prefill(tuple(int(t) for t in ids))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # A non-contiguous view of the same ids gives the same result.
    doubled = np.repeat(ids, 2)[::2]
    np.testing.assert_array_equal(model.session().prefill(doubled), a)


def test_prefill_in_chunks_matches_one_prefill():
    model, ref = load_model("deepseek_v32"), load_reference("deepseek_v32")
    ids = ref["input_ids"]
    s = model.session()
    first = s.prefill(ids[:10], all_logits=True)
    rest = s.prefill(ids[10:], all_logits=True)
    np.testing.assert_allclose(np.concatenate([first, rest]), ref["prefill_logits"], rtol=0, atol=TOL)
