"""The malformed-input corpus (tools/malformed_corpus.py) through Python: each case raises the
exception class of its error kind, with a message; none crashes the interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import moe

REPO = Path(__file__).resolve().parents[2]

CLASSES = {
    "not_found": moe.NotFoundError,
    "config": moe.ConfigError,
    "inconsistent": moe.InconsistentConfigError,
    "unsupported": moe.UnsupportedArchitectureError,
    "format": moe.FormatError,
    "missing_tensor": moe.MissingTensorError,
    "shape": moe.ShapeError,
    "dtype": moe.DtypeError,
    "tokenizer": moe.TokenizerError,
    "unsupported_quantization": moe.UnsupportedQuantizationError,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("malformed")
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "malformed_corpus.py"), str(out)], check=True
    )
    return json.loads((out / "manifest.json").read_text())


def test_every_malformed_case_raises_its_class(corpus):
    assert len(corpus) > 150
    failures = []
    for case in corpus:
        expect = case["expect"]
        try:
            moe.Model(case["dir"])
            if expect not in ("any",):
                failures.append(f"{case['name']}: loaded, expected {expect}")
        except moe.MoeError as e:
            if not str(e):
                failures.append(f"{case['name']}: {type(e).__name__} without a message")
            if expect in ("any", "error"):
                continue
            # Exactly the kind's class (ConfigError is not InconsistentConfigError).
            if type(e) is not CLASSES[expect]:
                failures.append(f"{case['name']}: expected {expect}, got {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_token_ids_at_or_beyond_the_vocabulary(corpus):
    model = moe.Model(REPO / "fixtures" / "mixtral")
    session = model.session()
    for bad in ([model.vocab_size], [0, 2**32 - 1]):
        with pytest.raises(moe.TokenOutOfRangeError):
            session.prefill(bad)
    assert len(session) == 0


def test_copied_weights_survive_the_file_changing(tmp_path):
    import shutil

    src = REPO / "fixtures" / "qwen3_moe"
    for f in src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    want = moe.Model(tmp_path).session().prefill([1, 2, 3])
    copied = moe.Model(tmp_path, copy_weights=True)
    (tmp_path / "model.safetensors").write_bytes(b"")
    got = copied.session().prefill([1, 2, 3])
    assert (got == want).all()
