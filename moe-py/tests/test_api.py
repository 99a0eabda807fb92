"""The Python API: model properties, session bookkeeping, generation options, progress callbacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from conftest import TOL, fixture_dir, load_model, load_reference

import moe


def test_version():
    assert isinstance(moe.__version__, str) and moe.__version__.count(".") == 2


def test_model_properties(model):
    config = json.loads((fixture_dir("deepseek_v3") / "config.json").read_text())
    assert model.vocab_size == config["vocab_size"]
    assert model.architecture == config["architectures"][0] == "DeepseekV3ForCausalLM"
    assert model.family == "deepseek_v3"
    assert model.config == config
    model.config["vocab_size"] = -1  # a copy: the model is unaffected
    assert model.config["vocab_size"] == config["vocab_size"]
    assert model.num_layers == config["num_hidden_layers"]
    assert model.hidden_size == config["hidden_size"]
    assert model.max_position_embeddings == config["max_position_embeddings"]
    assert model.checkpoint_bytes > 0
    assert Path(model.path) == fixture_dir("deepseek_v3")
    assert isinstance(model.eos_token_ids, list)
    assert "DeepseekV3ForCausalLM" in repr(model)


def test_model_accepts_str_and_pathlike():
    a = moe.Model(str(fixture_dir("gpt_oss")))
    b = moe.Model(fixture_dir("gpt_oss"))
    assert a.config == b.config


def test_progress_callback_sees_every_layer():
    calls = []
    model = moe.Model(fixture_dir("qwen3_moe"), progress=lambda done, total: calls.append((done, total)))
    n = model.num_layers
    assert calls == [(i, n) for i in range(1, n + 1)]


def test_progress_callback_error_propagates():
    def boom(done, total):
        raise KeyError("stop loading")

    with pytest.raises(KeyError, match="stop loading"):
        moe.Model(fixture_dir("qwen3_moe"), progress=boom)


def test_session_bookkeeping(model, reference):
    ids = reference["input_ids"].tolist()
    s = model.session(max_context=40)
    assert isinstance(s, moe.Session)
    assert len(s) == 0 and s.tokens == [] and s.max_context == 40
    assert s.model is model
    s.prefill(ids)
    assert len(s) == len(ids) and s.tokens == ids
    assert s.kv_cache_bytes > 0
    s.truncate(5)
    assert s.tokens == ids[:5]
    s.reset()
    assert len(s) == 0
    # A reset session gives the same logits as a fresh one.
    np.testing.assert_allclose(s.prefill(ids), reference["prefill_logits"][-1], rtol=0, atol=TOL)
    assert "len=24" in repr(s)


def test_truncate_then_redo_matches(model, reference):
    ids = reference["input_ids"]
    s = model.session()
    s.prefill(ids)
    s.truncate(len(ids) - 3)
    again = s.prefill(ids[-3:], all_logits=True)
    np.testing.assert_allclose(again, reference["prefill_logits"][-3:], rtol=0, atol=TOL)


def test_session_constructor_and_defaults():
    model = moe.Model(fixture_dir("deepseek_v3"), max_context=12)
    assert model.session().max_context == 12
    assert moe.Session(model).max_context == 12
    assert moe.Session(model, max_context=7).max_context == 7
    # The model's max_context bounds its generations: a full context ends them (not an error).
    stream = model.generate(list(range(10)), max_new_tokens=5, ignore_eos=True)
    assert len(list(stream)) == 2 and stream.finish_reason == "context"
    with pytest.raises(moe.ContextFullError):  # a prompt that does not fit is an error
        model.generate(list(range(13)), max_new_tokens=5)


def test_dense_mode_runs_dsa_model():
    model, ref = load_model("deepseek_v32"), load_reference("deepseek_v32")
    dense = model.session(sparse=False).prefill(ref["input_ids"])
    assert dense.shape == (model.vocab_size,)
    assert np.isfinite(dense).all()


def test_returned_arrays_are_owned_and_writable(model, reference):
    s = model.session()
    a = s.prefill(reference["input_ids"])
    a[:] = 0  # the caller owns the array
    b = s.decode(1)
    assert b.flags.writeable and b.flags.c_contiguous and np.any(b != 0)
    all_rows = model.session().prefill(reference["input_ids"], all_logits=True)
    assert all_rows.flags.c_contiguous


def test_generate_stops_at_stop_token_and_yields_it(model, reference):
    want = reference["decode_ids"].tolist()
    stop = want[2]
    assert stop not in want[:2]
    other = next(t for t in range(model.vocab_size) if t not in want)
    ids = reference["input_ids"]
    assert list(model.generate(ids, stop=stop, max_new_tokens=8, ignore_eos=True)) == want[:3]
    assert list(model.generate(ids, stop=[other, stop], max_new_tokens=8, ignore_eos=True)) == want[:3]
    assert list(model.generate(ids, stop=np.array([stop]), max_new_tokens=8, ignore_eos=True)) == want[:3]


def test_eos_from_generation_config_and_ignore_eos(tmp_path, reference):
    want = reference["decode_ids"].tolist()
    folder = tmp_path / "m"
    shutil.copytree(fixture_dir("deepseek_v3"), folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config["eos_token_id"] = want[3]
    (folder / "generation_config.json").write_text(json.dumps(config))
    model = moe.Model(folder)
    assert model.eos_token_ids == [want[3]]
    other = next(t for t in range(model.vocab_size) if t not in want)
    ids = reference["input_ids"]
    # Stop tokens add to the end-of-sequence ids; ignore_eos drops those.
    assert list(model.generate(ids, max_new_tokens=8)) == want[:4]
    assert list(model.generate(ids, stop=[other], max_new_tokens=8)) == want[:4]
    assert list(model.generate(ids, stop=[other], max_new_tokens=8, ignore_eos=True)) == want


def test_stop_token_outside_vocabulary(model):
    with pytest.raises(moe.TokenOutOfRangeError):
        model.generate([1, 2], stop=[model.vocab_size])


def test_generate_default_stop_is_eos(model, reference):
    want = reference["decode_ids"].tolist()
    eos = set(model.eos_token_ids)
    got = list(model.generate(reference["input_ids"], max_new_tokens=len(want)))
    cut = next((i + 1 for i, t in enumerate(want) if t in eos), len(want))
    assert got == want[:cut]


def test_generate_max_new_tokens(model, reference):
    assert list(model.generate(reference["input_ids"], max_new_tokens=0)) == []
    assert len(list(model.generate(reference["input_ids"], max_new_tokens=3, ignore_eos=True))) == 3


def test_generate_is_a_lazy_iterator_with_close(model, reference):
    stream = model.generate(reference["input_ids"], max_new_tokens=8, ignore_eos=True)
    assert iter(stream) is stream
    first = next(stream)
    assert first == reference["decode_ids"][0]
    stream.close()
    assert list(stream) == []
    assert stream.produced == 1 and stream.prompt_len == len(reference["input_ids"])


def test_sampling_is_seeded(model, reference):
    kw = {"max_new_tokens": 12, "temperature": 1.5, "top_k": 50, "top_p": 0.95, "min_p": 0.01, "ignore_eos": True}
    a = list(model.generate(reference["input_ids"], seed=7, **kw))
    b = list(model.generate(reference["input_ids"], seed=7, **kw))
    assert a == b
    assert all(0 <= t < model.vocab_size for t in a)
    runs = {tuple(model.generate(reference["input_ids"], seed=s, **kw)) for s in range(6)}
    assert len(runs) > 1, "different seeds should give different samples at temperature 1.5"


def test_top_k_one_is_greedy(model, reference):
    want = reference["decode_ids"].tolist()
    got = list(
        model.generate(reference["input_ids"], temperature=1.0, top_k=1, max_new_tokens=len(want), ignore_eos=True)
    )
    assert got == want


def test_repetition_penalty_changes_greedy_output(model, reference):
    want = reference["decode_ids"].tolist()
    got = list(
        model.generate(reference["input_ids"], repetition_penalty=50.0, max_new_tokens=len(want), ignore_eos=True)
    )
    assert not set(got) & set(reference["input_ids"].tolist())
    assert got != want or not set(want) & set(reference["input_ids"].tolist())


def test_dedicated_pool_and_precision(reference):
    one = moe.Model(fixture_dir("deepseek_v3"), threads=1, precision="f32")
    assert one.threads == 1 and one.precision == "f32"
    logits = one.session().prefill(reference["input_ids"], all_logits=True)
    np.testing.assert_allclose(logits, reference["prefill_logits"], rtol=0, atol=TOL)
    fast = moe.Model(fixture_dir("deepseek_v3"), threads=2, precision="bf16")
    assert fast.threads == 2 and fast.precision == "bf16"
    approx = fast.session().prefill(reference["input_ids"], all_logits=True)
    scale = np.abs(reference["prefill_logits"]).max()
    np.testing.assert_allclose(approx, reference["prefill_logits"], rtol=0, atol=0.05 * scale)


def test_default_precision_is_bf16_and_exact_is_one_option_away():
    """A model loaded with the defaults computes bf16 activations for bf16 weights (the demo model's
    weights are bf16): its logits are close to the exact mode's but not the same."""
    demo = Path(__file__).resolve().parents[2] / "models" / "tiny-deepseek-pycode"
    ref = load_file(str(demo / "reference.safetensors"))
    default, exact = moe.Model(demo), moe.Model(demo, precision="f32")
    assert default.precision == "bf16" and exact.precision == "f32"
    assert moe.Model(demo, threads=1).precision == "bf16"
    # A prefill and a decode step.
    sd, se = default.session(), exact.session()
    got = sd.prefill(ref["input_ids"], all_logits=True)
    want = se.prefill(ref["input_ids"], all_logits=True)
    np.testing.assert_allclose(want, ref["prefill_logits"], rtol=0, atol=TOL)
    token = int(ref["decode_ids"][0])
    got_d, want_d = sd.decode(token), se.decode(token)
    np.testing.assert_allclose(want_d, ref["decode_logits"][0], rtol=0, atol=TOL)
    # Close in distribution (a rounding may flip a routing choice at some position, which moves that
    # position's logits by more than a bound on the largest difference would allow).
    stream = [int(t) for t in ref["input_ids"]] + [int(t) for t in ref["decode_ids"]]
    f = moe.fidelity(exact, default, stream)
    assert f["kl_mean"] < 3e-2 and f["top1_agreement"] >= 0.9, f
    # Where the kernels do bf16 arithmetic the rounding shows; elsewhere bf16-weight products keep
    # f32 activations and both modes agree.
    if _bf16_arithmetic_in_use():
        assert not (np.array_equal(got, want) and np.array_equal(got_d, want_d))
        assert f["kl_mean"] > 0


def _bf16_arithmetic_in_use() -> bool:
    """Whether the bf16 mode rounds activations here: the CPU has AVX512_BF16 and the measured kernel
    table (moe-core/src/kernels/choice.rs) does not send bf16-weight products through widen + FMA,
    as it does on Intel (family 6) for both product kinds."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return False
    return "avx512_bf16" in info and "GenuineIntel" not in info


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"threads": -2}, {"precision": "fp8"}])
def test_bad_compute_arguments(kwargs):
    with pytest.raises(ValueError):
        moe.Model(fixture_dir("deepseek_v3"), **kwargs)


def test_estimate_memory_before_loading():
    est = moe.estimate_memory(fixture_dir("deepseek_v3"), context=40)
    model = moe.Model(fixture_dir("deepseek_v3"))
    assert set(est) == {"weight_bytes", "kv_cache_bytes_per_token", "context", "kv_cache_bytes", "total_bytes"}
    assert est["context"] == 40
    assert 0 < est["weight_bytes"] <= model.checkpoint_bytes
    s = model.session()
    s.prefill(list(range(1, 41)))
    assert s.kv_cache_bytes == est["kv_cache_bytes"]
    assert est["total_bytes"] == est["weight_bytes"] + est["kv_cache_bytes"]
    with pytest.raises(moe.NotFoundError):
        moe.estimate_memory("/no/such/model")


def test_prefill_progress_and_cancel():
    model = moe.Model(fixture_dir("qwen3_moe"))
    ids = list(range(1, 11))
    seen = []
    s = model.session()
    logits = s.prefill(ids, progress=lambda d, t: seen.append((d, t)), chunk=4)
    assert seen == [(4, 10), (8, 10), (10, 10)] and logits.shape == (model.vocab_size,)
    s = model.session()
    with pytest.raises(moe.CancelledError) as info:
        s.prefill(ids, progress=lambda d, t: d < 4, chunk=4)
    assert info.value.done == 4 and len(s) == 4

    def boom(d, t):
        raise KeyError("stop")

    with pytest.raises(KeyError):
        model.session().prefill(ids, progress=boom, chunk=4)


def test_engine_logs_go_to_python_logging(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="moe_core"):
        moe.Model(fixture_dir("mixtral"))
    loaded = [r for r in caplog.records if r.name.startswith("moe_core") and "loaded" in r.getMessage()]
    assert loaded and "mixtral" in loaded[0].getMessage()
    caplog.clear()
    moe.Model(fixture_dir("mixtral"))  # the default WARNING level: silent
    assert not [r for r in caplog.records if r.name.startswith("moe_core")]
