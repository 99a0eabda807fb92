"""Session forks, snapshots and KV cache precision from Python."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAMILIES, load_model, load_reference

import moe


def _continue(session: moe.Session, ids) -> np.ndarray:
    return np.stack([session.decode(int(t)) for t in ids])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kv_dtype", ["f32", "bf16", "int8"])
def test_restored_and_forked_sessions_continue_exactly(family: str, kv_dtype: str) -> None:
    model = load_model(family)
    ref = load_reference(family)
    prompt, nxt = ref["input_ids"], ref["decode_ids"]
    a = model.session(kv_dtype=kv_dtype)
    assert a.kv_dtype == kv_dtype
    a.prefill(prompt)
    data = a.snapshot()
    assert isinstance(data, bytes)
    b = moe.Session.restore(model, data)
    assert b.tokens == a.tokens and b.kv_dtype == kv_dtype and b.max_context == a.max_context
    f = a.fork()
    assert f.tokens == a.tokens
    want = _continue(a, nxt)
    np.testing.assert_array_equal(_continue(b, nxt), want)
    np.testing.assert_array_equal(_continue(f, nxt), want)


def test_forks_share_the_prompt_cache(model: moe.Model) -> None:
    prompt = list(range(1, 21))
    parent = model.session()
    parent.prefill(prompt)
    full = parent.kv_cache_bytes
    assert parent.kv_cache_shared_bytes == 0
    forks = [parent.fork() for _ in range(3)]
    for i, f in enumerate(forks):
        f.decode(i + 1)
        assert f.kv_cache_shared_bytes == full
        assert f.kv_cache_bytes == full * 21 // 20
    held = sum(s.kv_cache_bytes - s.kv_cache_shared_bytes for s in [parent, *forks]) + full
    assert held == full * 23 // 20
    del forks, f  # the loop variable held the last fork
    assert parent.kv_cache_shared_bytes == 0


def test_compact_precisions(model: moe.Model) -> None:
    sizes = {}
    for dt in ["f32", "bf16", "int8"]:
        s = moe.Session(model, kv_dtype=dt)
        s.prefill([1, 2, 3, 4, 5, 6])
        sizes[dt] = s.kv_cache_bytes
    assert sizes["bf16"] * 2 == sizes["f32"]
    assert sizes["int8"] * 3 < sizes["f32"]
    with pytest.raises(moe.InvalidArgumentError, match="fp8"):
        model.session(kv_dtype="fp8")


def test_snapshot_files_and_errors(model: moe.Model, tmp_path) -> None:
    s = model.session(kv_dtype="int8")
    s.prefill([3, 1, 4, 1, 5])
    path = tmp_path / "s.moesnap"
    s.save(path)
    r = moe.Session.restore_file(model, str(path))
    np.testing.assert_array_equal(r.decode(9), s.decode(9))
    data = s.snapshot()

    with pytest.raises(moe.SnapshotTruncatedError) as e:
        moe.Session.restore(model, data[:-3])
    assert e.value.len == len(data) - 3 and e.value.needed == len(data)
    bad = bytearray(data)
    bad[-20] ^= 0x40
    with pytest.raises(moe.SnapshotCorruptError):
        moe.Session.restore(model, bytes(bad))
    v = bytearray(data)
    v[8] = 42
    with pytest.raises(moe.SnapshotVersionError) as ev:
        moe.Session.restore(model, bytes(v))
    assert ev.value.found == 42 and ev.value.supported == 1
    other = load_model("qwen3_moe")
    with pytest.raises(moe.SnapshotModelMismatchError) as em:
        moe.Session.restore(other, data)
    assert em.value.expected == other.fingerprint and em.value.found == model.fingerprint
    assert isinstance(em.value, moe.SnapshotError) and isinstance(em.value, moe.MoeError)
    with pytest.raises(moe.NotFoundError):
        moe.Session.restore_file(model, tmp_path / "missing")
    path.write_bytes(data[:40])
    with pytest.raises(moe.SnapshotTruncatedError):
        moe.Session.restore_file(model, path)
