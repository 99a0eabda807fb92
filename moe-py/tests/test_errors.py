"""Bad paths, bad checkpoints and bad arguments raise the documented exceptions, never crash."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import fixture_dir

import moe


def test_missing_path_is_file_not_found(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError) as info:
        moe.Model(missing)
    assert isinstance(info.value, moe.NotFoundError)
    assert isinstance(info.value, moe.MoeError)
    assert info.value.filename == str(missing)


def test_folder_without_config_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        moe.Model(str(tmp_path))


def test_path_argument_type():
    with pytest.raises(TypeError):
        moe.Model(123)
    with pytest.raises(TypeError):
        moe.Model(None)


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_unsupported_architecture(tmp_path):
    folder = write_config(tmp_path / "m", {"model_type": "bert", "architectures": ["BertModel"]})
    with pytest.raises(moe.UnsupportedArchitectureError) as info:
        moe.Model(folder)
    assert info.value.architecture == "bert"


def test_bad_config_json(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(moe.ConfigError) as info:
        moe.Model(folder)
    assert info.value.path.endswith("config.json")


def test_inconsistent_config_is_a_config_error(tmp_path):
    config = json.loads((fixture_dir("qwen3_moe") / "config.json").read_text())
    config["num_experts_per_tok"] = config["num_experts"] + 1
    folder = write_config(tmp_path / "m", config)
    with pytest.raises(moe.ConfigError):
        moe.Model(folder)


def read_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_safetensors(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def copy_fixture(tmp_path: Path, family: str = "qwen3_moe") -> Path:
    folder = tmp_path / family
    shutil.copytree(fixture_dir(family), folder)
    return folder


def test_truncated_safetensors_is_format_error(tmp_path):
    folder = copy_fixture(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(moe.FormatError) as info:
        moe.Model(folder)
    assert info.value.path.endswith("model.safetensors")


def test_missing_tensor(tmp_path):
    folder = copy_fixture(tmp_path)
    weights = folder / "model.safetensors"
    header, data = read_safetensors(weights)
    header["renamed.weight"] = header.pop("model.norm.weight")
    write_safetensors(weights, header, data)
    with pytest.raises(moe.MissingTensorError) as info:
        moe.Model(folder)
    assert info.value.name == "model.norm.weight"


def test_wrong_shape(tmp_path):
    folder = copy_fixture(tmp_path)
    weights = folder / "model.safetensors"
    header, data = read_safetensors(weights)
    name = "model.embed_tokens.weight"
    header[name]["shape"] = header[name]["shape"][::-1]  # same size, wrong shape
    write_safetensors(weights, header, data)
    with pytest.raises(moe.ShapeError) as info:
        moe.Model(folder)
    assert info.value.name == name


@pytest.fixture
def session(model):
    return model.session(max_context=16)


def test_token_out_of_range(session, model):
    v = model.vocab_size
    for bad in ([v], [1, 2, v + 5], np.array([0, v], dtype=np.int64)):
        with pytest.raises(ValueError) as info:
            session.prefill(bad)
        assert isinstance(info.value, moe.TokenOutOfRangeError)
        assert info.value.vocab_size == v
    with pytest.raises(moe.TokenOutOfRangeError) as info:
        session.decode(v)
    assert info.value.token == v
    assert len(session) == 0  # nothing was fed


@pytest.mark.parametrize("bad", [-1, 2**32, 2**40, 2**70, -(2**70)])
def test_ids_outside_u32_are_out_of_range(session, bad):
    with pytest.raises(moe.TokenOutOfRangeError) as info:
        session.decode(bad)
    assert info.value.token == bad
    with pytest.raises(ValueError):
        session.prefill([1, bad])
    with pytest.raises(ValueError):
        session.prefill(np.array([1, -1], dtype=np.int64))


@pytest.mark.parametrize("bad", ["abc", b"abc", 1.5, None, [1.0, 2.0], [1, "2"], [True], {1: 2}.items()])
def test_ids_of_wrong_type(session, bad):
    with pytest.raises(TypeError):
        session.prefill(bad)


def test_arrays_of_wrong_kind(session):
    with pytest.raises(TypeError):
        session.prefill(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError):
        session.prefill(np.ones(3, dtype=bool))
    with pytest.raises(ValueError):
        session.prefill(np.zeros((2, 2), dtype=np.int64))


@pytest.mark.parametrize("bad", [1.0, "1", True, None, [1]])
def test_decode_wrong_type(session, bad):
    with pytest.raises(TypeError):
        session.decode(bad)


def test_empty_prompt(session, model):
    with pytest.raises(moe.EmptyPromptError):
        session.prefill([])
    with pytest.raises(ValueError):
        session.prefill(np.array([], dtype=np.int64))
    with pytest.raises(moe.EmptyPromptError):
        model.generate([])


def test_context_full(model):
    s = model.session(max_context=4)
    s.prefill([1, 2, 3])
    with pytest.raises(moe.ContextFullError) as info:
        s.prefill([4, 5])
    assert (info.value.needed, info.value.max_context) == (5, 4)
    assert len(s) == 3  # the failed call changed nothing
    s.decode(4)
    with pytest.raises(moe.ContextFullError):
        s.decode(5)


def test_generation_past_max_context(model):
    # A full context ends generation with finish_reason "context"; it does not raise.
    stream = model.generate([1, 2, 3], max_new_tokens=10, max_context=5, ignore_eos=True)
    got = list(stream)
    assert len(got) == 2  # the two tokens that fit
    assert stream.finish_reason == "context"
    assert list(stream) == []  # exhausted


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"min_p": -0.1},
        {"repetition_penalty": 0.0},
        {"max_new_tokens": -1},
        {"top_k": -3},
        {"max_context": 0},
    ],
)
def test_bad_generation_arguments_are_value_errors(model, kwargs):
    with pytest.raises(ValueError):
        model.generate([1, 2], **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": "hot"}, {"max_new_tokens": 1.5}, {"seed": "x"}, {"stop": "eos"}, {"stop": [1.5]}],
)
def test_bad_generation_argument_types(model, kwargs):
    with pytest.raises(TypeError):
        model.generate([1, 2], **kwargs)


def test_bad_session_arguments(model):
    with pytest.raises(ValueError):
        model.session(max_context=0)
    with pytest.raises(ValueError):
        model.session(max_context=-5)
    with pytest.raises(TypeError):
        model.session(4)  # keyword-only
    with pytest.raises(ValueError):
        model.session().truncate(-1)


def test_every_error_is_a_moe_error():
    for name in moe.errors.__all__:
        cls = getattr(moe, name)
        assert issubclass(cls, moe.MoeError), name
        assert cls is getattr(moe.errors, name)
