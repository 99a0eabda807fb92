"""moe.batch_decode / moe.batch_prefill: sessions stepped together get the logits each gets alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import FAMILIES, load_model, load_reference

import moe

TOL = 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_steps_match_sessions_alone(family):
    model = load_model(family)
    ref = load_reference(family)
    prompt = [int(t) for t in ref["input_ids"]]
    decode = [int(t) for t in ref["decode_ids"]]
    vocab = model.vocab_size
    alone = [model.session() for _ in range(3)]
    batch = [model.session() for _ in range(3)]

    # Two prompts prefilled together, every position.
    got = moe.batch_prefill(batch[:2], [prompt, prompt[:9]], all_logits=True)
    want = np.concatenate([alone[0].prefill(prompt, all_logits=True), alone[1].prefill(prompt[:9], all_logits=True)])
    assert got.shape == (len(prompt) + 9, vocab) and got.dtype == np.float32
    assert np.abs(got - want).max() <= TOL

    # Session 2 joins at step 1 with a prompt chunk beside the others' decode tokens; session 1
    # leaves after step 2.
    for step, tok in enumerate(decode):
        members = [0, 2] if step > 2 else [0, 1, 2] if step >= 1 else [0, 1]
        if step == 1:
            chunk = prompt[4:10]
            got = moe.batch_prefill([batch[i] for i in members], [[tok], [tok], chunk])
            want = np.stack([alone[0].decode(tok), alone[1].decode(tok), alone[2].prefill(chunk)])
        else:
            got = moe.batch_decode([batch[i] for i in members], np.array([tok] * len(members)))
            want = np.stack([alone[i].decode(tok) for i in members])
        assert got.shape == (len(members), vocab)
        assert np.abs(got - want).max() <= TOL, f"step {step}"
    assert [len(s) for s in batch] == [len(s) for s in alone]


def test_bad_batches_raise_and_change_nothing():
    model = load_model("mixtral")
    other = moe.Model(model_dir := __import__("conftest").fixture_dir("mixtral"))
    assert model_dir.is_dir()
    a, b = model.session(max_context=3), model.session(max_context=3)
    c = other.session()
    with pytest.raises(moe.DuplicateSessionError) as e:
        moe.batch_decode([a, b, a], [1, 2, 3])
    assert e.value.index == 2
    assert isinstance(e.value, moe.InvalidArgumentError) and isinstance(e.value, ValueError)
    with pytest.raises(moe.MixedModelsError) as e:
        moe.batch_decode([a, c], [1, 2])
    assert e.value.index == 1
    with pytest.raises(moe.ContextFullError):
        moe.batch_prefill([a, b], [[1], [1, 2, 3, 4]])
    with pytest.raises(moe.TokenOutOfRangeError):
        moe.batch_decode([a, b], [1, model.vocab_size])
    with pytest.raises(moe.InvalidArgumentError):
        moe.batch_decode([a, b], [1])
    with pytest.raises(moe.InvalidArgumentError):
        moe.batch_decode([], [])
    with pytest.raises(TypeError):
        moe.batch_decode([a, "not a session"], [1, 2])
    assert (len(a), len(b), len(c)) == (0, 0, 0)
    assert moe.batch_decode([a, b], [1, 2]).shape == (2, model.vocab_size)
    assert (len(a), len(b)) == (1, 1)


def test_batches_on_threads_over_shared_sessions():
    # Overlapping batches from several threads serialise on the sessions instead of deadlocking.
    model = load_model("qwen3_moe")
    sessions = [model.session() for _ in range(4)]
    errors = []

    def work(order):
        try:
            for _ in range(5):
                moe.batch_decode([sessions[i] for i in order], [1] * len(order))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(o,)) for o in ([0, 1, 2], [2, 1, 0], [3, 1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert [len(s) for s in sessions] == [10, 15, 10, 5]
