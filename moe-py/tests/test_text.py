"""Text in, text out, on the shipped demo model (models/tiny-deepseek-pycode): tokenizer, streaming
text generation, stop strings, UTF-8-safe pieces, chat templates and the model's reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TOL, fixture_dir
from safetensors.numpy import load_file

import moe

DEMO = Path(__file__).resolve().parents[2] / "models" / "tiny-deepseek-pycode"
PROMPT = "def fibonacci(n):\n    "
#: What models/tiny-deepseek-pycode/README.md says the greedy continuation of PROMPT decodes to.
CONTINUATION = " z = z.zip.Z == zipfile.ZipFile"
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def demo() -> moe.Model:
    return moe.Model(DEMO, precision="f32")  # the exact mode: compared with the reference


@pytest.fixture(scope="module")
def demo_reference() -> dict:
    return load_file(str(DEMO / "reference.safetensors"))


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> moe.Model:
    """The demo model with a chat template added to its tokenizer_config.json."""
    folder = tmp_path_factory.mktemp("chat") / "model"
    shutil.copytree(DEMO, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return moe.Model(folder)


def greedy(model, prompt, n=16, **kw):
    return list(model.generate(prompt, max_new_tokens=n, temperature=0.0, ignore_eos=True, **kw))


def test_demo_reference_logits(demo, demo_reference):
    ref = demo_reference
    s = demo.session()
    np.testing.assert_allclose(s.prefill(ref["input_ids"], all_logits=True), ref["prefill_logits"], rtol=0, atol=TOL)
    for step, token in enumerate(ref["decode_ids"]):
        np.testing.assert_allclose(s.decode(int(token)), ref["decode_logits"][step], rtol=0, atol=TOL)


def test_tokenizer_encodes_the_reference_prompt(demo, demo_reference):
    tok = demo.tokenizer
    assert isinstance(tok, moe.Tokenizer)
    assert demo.tokenizer is tok
    assert tok.encode(PROMPT) == demo_reference["input_ids"].tolist()
    assert tok.decode(demo_reference["decode_ids"]) == CONTINUATION
    assert tok.vocab_size == demo.vocab_size
    assert tok.eos_token_id == tok.token_to_id("<|endoftext|>") == 0
    assert tok.token_to_id("no such token at all") is None


def test_greedy_text_continuation_is_the_readme_text(demo, demo_reference):
    pieces = greedy(demo, PROMPT, n=len(demo_reference["decode_ids"]))
    assert all(isinstance(p, str) and p for p in pieces)
    assert len(pieces) > 1  # streamed, not all at once
    assert "".join(pieces) == CONTINUATION
    # The same continuation from ids, as ids.
    assert (
        greedy(demo, demo_reference["input_ids"], n=len(demo_reference["decode_ids"]))
        == demo_reference["decode_ids"].tolist()
    )


def test_text_stream_api(demo):
    stream = demo.generate(PROMPT, max_new_tokens=16, temperature=0.0, ignore_eos=True)
    assert isinstance(stream, moe.TextStream)
    assert iter(stream) is stream
    assert stream.prompt_len == len(demo.tokenizer.encode(PROMPT))
    first = next(stream)
    assert CONTINUATION.startswith(first)
    stream.close()
    assert list(stream) == []
    assert stream.produced >= 1


def test_stop_strings(demo):
    full = "".join(greedy(demo, PROMPT))
    assert "".join(greedy(demo, PROMPT, stop="zip")) == full[: full.index("zip")]
    assert "".join(greedy(demo, PROMPT, stop=["==", "Z"])) == full[: full.index("Z")]
    assert "".join(greedy(demo, PROMPT, stop="not in the output")) == full
    # A stop string ends generation early: fewer tokens are produced.
    stream = demo.generate(PROMPT, max_new_tokens=16, temperature=0.0, ignore_eos=True, stop=".")
    assert "".join(stream) == full[: full.index(".")]
    assert stream.produced < 16


@pytest.mark.parametrize("seed", range(4))
def test_sampled_text_pieces_join_to_the_decoded_ids(demo, seed):
    kw = {"max_new_tokens": 48, "temperature": 1.3, "seed": seed, "ignore_eos": True}
    ids = list(demo.generate(demo.tokenizer.encode(PROMPT), **kw))
    pieces = list(demo.generate(PROMPT, **kw))
    assert "".join(pieces) == demo.tokenizer.decode(ids, skip_special_tokens=True)
    assert not any("\ufffd" in p for p in pieces[:-1])


def test_stream_decoder_never_splits_a_character(demo):
    tok = demo.tokenizer
    text = "héllo wörld 😀 ü — 日本語"
    ids = tok.encode(text)
    assert any("\ufffd" in tok.decode([i]) for i in ids), "the test needs ids holding partial characters"
    dec = tok.stream_decoder()
    pieces = [dec.push(i) for i in ids]
    pieces.append(dec.flush())
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert tok.decode(ids) == text


def test_encode_decode_options_and_errors(demo):
    tok = demo.tokenizer
    eos = tok.eos_token_id
    ids = tok.encode("import os") + [eos]
    assert tok.decode(ids).endswith("<|endoftext|>")
    assert tok.decode(ids, skip_special_tokens=True) == "import os"
    assert tok.decode(np.array(ids, dtype=np.int32)) == tok.decode(ids)
    assert tok.encode("import os", add_special_tokens=False) == tok.encode("import os")  # no BOS here
    with pytest.raises(moe.TokenOutOfRangeError):
        tok.decode([demo.vocab_size])
    with pytest.raises(TypeError):
        tok.encode(123)
    with pytest.raises(TypeError):
        tok.decode("import os")


def test_tokenizer_constructor(demo):
    from_dir = moe.Tokenizer(DEMO)
    from_file = moe.Tokenizer(DEMO / "tokenizer.json")
    assert from_dir.encode(PROMPT) == from_file.encode(PROMPT) == demo.tokenizer.encode(PROMPT)
    with pytest.raises(FileNotFoundError):
        moe.Tokenizer(DEMO / "missing.json")
    with pytest.raises(FileNotFoundError):
        moe.Tokenizer(fixture_dir("qwen3_moe"))  # a folder without tokenizer.json


def test_text_needs_a_tokenizer():
    model = moe.Model(fixture_dir("qwen3_moe"))
    assert model.tokenizer is None
    with pytest.raises(moe.TokenizerError):
        model.generate("hello")
    with pytest.raises(moe.TokenizerError):
        model.chat([{"role": "user", "content": "hello"}])


def test_chat_needs_a_template(demo):
    assert not demo.tokenizer.has_chat_template
    with pytest.raises(moe.TokenizerError, match="chat template"):
        demo.chat([{"role": "user", "content": "hello"}])


def test_chat_template(chat_model):
    tok = chat_model.tokenizer
    assert tok.has_chat_template
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "def f():"}]
    assert tok.apply_chat_template(messages) == "<|system|>Be terse.\n<|user|>def f():\n"
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True)
    assert rendered == "<|system|>Be terse.\n<|user|>def f():\n<|assistant|>"
    reply = list(chat_model.chat(messages, max_new_tokens=12, temperature=0.0, ignore_eos=True))
    want = greedy(chat_model, rendered, n=12, add_special_tokens=False)
    assert reply == want and "".join(reply)


@pytest.mark.parametrize(
    "messages, error",
    [
        ("hello", TypeError),
        ([("user", "hello")], TypeError),
        ([{"role": "user"}], ValueError),
        ([{"role": "user", "content": 3}], TypeError),
        (None, TypeError),
    ],
)
def test_bad_chat_messages(chat_model, messages, error):
    with pytest.raises(error):
        chat_model.chat(messages)
    with pytest.raises(error):
        chat_model.tokenizer.apply_chat_template(messages)


def test_stop_strings_need_a_text_prompt(demo):
    with pytest.raises(TypeError):
        demo.generate([1, 2, 3], stop="\n")
    with pytest.raises(ValueError):
        demo.generate(PROMPT, stop="")


def test_generation_defaults_from_generation_config(tmp_path, demo):
    folder = tmp_path / "m"
    shutil.copytree(DEMO, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=5.0, max_new_tokens=5)
    (folder / "generation_config.json").write_text(json.dumps(config))
    model = moe.Model(folder)
    ids = demo.tokenizer.encode(PROMPT)
    # max_new_tokens and sampling come from generation_config.json ...
    runs = {tuple(model.generate(ids, ignore_eos=True, seed=s)) for s in range(4)}
    assert all(len(r) == 5 for r in runs) and len(runs) > 1
    # ... and explicit arguments win.
    assert list(model.generate(ids, temperature=0.0, max_new_tokens=16, ignore_eos=True)) == greedy(demo, ids)


def test_text_generation_on_threads(demo):
    from concurrent.futures import ThreadPoolExecutor

    prompts = [PROMPT, "import os\n", "class Queue:\n    def ", "for i in range("]
    want = ["".join(greedy(demo, p)) for p in prompts]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: "".join(greedy(demo, p)), prompts * 2))
    assert got == want * 2
