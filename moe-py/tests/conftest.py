"""Shared pytest fixtures: where the repository's model fixtures are and their references."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from safetensors.numpy import load_file

import moe

#: The repository's tiny random models (one folder per family), or $MOE_FIXTURES.
FIXTURES = Path(os.environ.get("MOE_FIXTURES", Path(__file__).resolve().parents[2] / "fixtures"))

#: Families whose reference must match through Python (the issue's minimum).
REQUIRED_FAMILIES = ["deepseek_v3", "qwen3_moe", "gpt_oss", "deepseek_v32"]

#: Every family fixture present (the required ones must be).
FAMILIES = sorted(p.name for p in FIXTURES.glob("*") if (p / "reference.safetensors").is_file())

#: Agreement with the reference implementation (transformers, f32), as in the Rust golden tests.
TOL = 1e-3

#: The exact mode, which the golden tests use (the library's default is "bf16").
EXACT = "f32"


def fixture_dir(family: str) -> Path:
    path = FIXTURES / family
    assert (path / "config.json").is_file(), f"missing fixture {path}"
    return path


_models: dict[str, moe.Model] = {}


def load_model(family: str) -> moe.Model:
    """One shared model per family for the whole run (a model is immutable and thread-safe), in the
    exact mode (`precision="f32"`): the golden tests compare with the f32 reference."""
    if family not in _models:
        _models[family] = moe.Model(fixture_dir(family), precision=EXACT)
    return _models[family]


def load_reference(family: str) -> dict:
    """`input_ids` i64 [T], `prefill_logits` f32 [T, V], `decode_ids` i64 [N], `decode_logits` f32 [N, V]."""
    return load_file(str(fixture_dir(family) / "reference.safetensors"))


@pytest.fixture
def model() -> moe.Model:
    """The DeepSeek-V3 fixture, for API and error tests."""
    return load_model("deepseek_v3")


@pytest.fixture
def reference() -> dict:
    return load_reference("deepseek_v3")
