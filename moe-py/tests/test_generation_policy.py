"""Python follows moe-core's one generation policy: the same ids, text and finish reasons as
fixtures/generation_policy/expected.json, which the Rust and C tests reproduce too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import moe

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "fixtures" / "generation_policy"
PROMPT = "def fibonacci(n):\n    "
CHAT = [
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "A queue class, please."},
]
SAMPLED = dict(temperature=0.8, top_k=40, top_p=0.95, seed=7, max_new_tokens=24)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("templated-demo")
    demo = REPO / "models" / "tiny-deepseek-pycode"
    for f in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(demo / f, d / f)
    cfg = json.loads((demo / "tokenizer_config.json").read_text())
    cfg["bos_token"] = "<|endoftext|>"
    cfg["chat_template"] = (POLICY / "chat_template.jinja").read_text()
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return moe.Model(d, precision="f32")  # the exact mode, as the expectation was computed


@pytest.fixture(scope="module")
def want():
    return json.loads((POLICY / "expected.json").read_text())


def check(model, want, case, prompt_ids, text_stream, **kw):
    w = want[case]
    assert prompt_ids == w["prompt_ids"], case
    text = "".join(text_stream)
    assert text == w["text"], case
    assert text_stream.finish_reason == w["finish_reason"], case
    assert text_stream.stop_string == w["stop_string"], case
    if case != "stop_strings":
        ids = model.generate(prompt_ids, **kw)
        assert list(ids) == w["generated_ids"], case
        assert ids.finish_reason == w["finish_reason"], case


def test_python_reproduces_the_shared_expectation(model, want):
    tok = model.tokenizer
    ids = tok.encode(PROMPT)
    check(model, want, "sampled_text", ids, model.generate(PROMPT, **SAMPLED), **SAMPLED)
    chat_ids = tok.encode(tok.apply_chat_template(CHAT, add_generation_prompt=True), add_special_tokens=False)
    check(model, want, "sampled_chat", chat_ids, model.chat(CHAT, **SAMPLED), **SAMPLED)
    # The library's defaults: no arguments at all (seed 0 like Rust and C).
    check(model, want, "defaults", ids, model.generate(PROMPT))
    stops = model.generate(PROMPT, stop=["never there", "dictionary"], **SAMPLED)
    check(model, want, "stop_strings", ids, stops)


def test_finish_reasons_context_and_cancelled(model):
    stream = model.generate("import os\n", max_context=8, max_new_tokens=100)
    list(stream)
    assert stream.finish_reason == "context"
    stream = model.generate("import os\n", max_new_tokens=100)
    assert stream.finish_reason is None
    next(stream)
    stream.close()
    assert stream.finish_reason == "cancelled"
    ids = model.generate([5, 6], max_new_tokens=2)
    assert len(list(ids)) == 2 and ids.finish_reason == "length"


def test_session_generate_continues_the_cache(model, want):
    session = model.session()
    first = session.generate(PROMPT, **SAMPLED)
    with pytest.raises(moe.InvalidArgumentError, match="generating"):
        len(session)
    text = "".join(first)
    # The stream ended: the session is back, holding prompt and answer.
    assert text == want["sampled_text"]["text"]
    held = session.tokens
    assert held == want["sampled_text"]["prompt_ids"] + want["sampled_text"]["generated_ids"]
    # A second turn is fed after what the session holds: the same as one generation over the whole.
    more = session.generate([5, 6, 7], max_new_tokens=4)
    second = list(more)
    assert more.finish_reason == "length" and len(second) == 4
    assert session.tokens == held + [5, 6, 7] + second
    # Closing (or dropping) a stream also gives the session back.
    stream = session.generate([8], max_new_tokens=50)
    next(stream)
    stream.close()
    assert stream.finish_reason == "cancelled"
    assert len(session) == len(held) + 3 + 4 + 1 + 1
    stream = session.generate([9], max_new_tokens=50)
    del stream
    assert session.tokens[-1] == 9


def test_session_chat_feeds_only_the_new_turns(model):
    session = model.session()
    convo = list(CHAT)
    reply = "".join(session.chat(convo, max_new_tokens=8))
    after_first = len(session)
    convo += [{"role": "assistant", "content": reply}, {"role": "user", "content": "More."}]
    tok = model.tokenizer
    full = tok.encode(tok.apply_chat_template(convo, add_generation_prompt=True), add_special_tokens=False)
    stream = session.chat(convo, max_new_tokens=3)
    assert stream.prompt_len < len(full), "the earlier turns were not fed again"
    list(stream)
    assert len(session) > after_first
    # The cache then holds exactly the rendered conversation and the answer, as if fed from scratch.
    assert session.tokens[: len(full)] == full
    # A different conversation keeps only what it shares (here the BOS) and replaces the rest.
    hi = [{"role": "user", "content": "Hi."}]
    other = session.chat(hi, max_new_tokens=2)
    hi_ids = tok.encode(tok.apply_chat_template(hi, add_generation_prompt=True), add_special_tokens=False)
    assert other.prompt_len < len(hi_ids)
    list(other)
    assert session.tokens[: len(hi_ids)] == hi_ids
