"""One model shared by 8 Python threads, each with its own sessions, computes bit for bit what the same
calls compute one after another; random orders of prefill, decode, truncate, reset and dropping
sessions on 8 threads at once replay identically on one thread."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from conftest import fixture_dir

import moe

THREADS = 8


def test_eight_threads_share_one_model_bit_for_bit():
    model = moe.Model(fixture_dir("deepseek_v32"))
    prompt = list(range(1, 21))

    def sequential(i: int) -> np.ndarray:
        s = model.session()
        out = [s.prefill(prompt[: 4 + i], all_logits=True).ravel()]
        out += [s.decode(7 * i + t) for t in range(4)]
        return np.concatenate(out)

    want = [sequential(i) for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def concurrent(i: int) -> np.ndarray:
        barrier.wait()
        return sequential(i)

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(concurrent, range(THREADS)))
    for i in range(THREADS):
        assert got[i].tobytes() == want[i].tobytes(), f"thread {i}"


def script(model: moe.Model, seed: int, steps: int) -> list:
    rng = random.Random(seed)
    v = model.vocab_size
    session = model.session(max_context=48)
    seen: list = []
    for _ in range(steps):
        op = rng.randrange(10)
        try:
            if op <= 2:
                ids = [rng.randrange(v + v // 16) for _ in range(1 + rng.randrange(12))]
                seen.append(session.prefill(ids, all_logits=rng.random() < 0.5).tobytes())
            elif op <= 6:
                seen.append(session.decode(rng.randrange(v)).tobytes())
            elif op == 7:
                session.truncate(rng.randrange(len(session) + 2))
                seen.append(len(session))
            elif op == 8:
                session.reset()
                seen.append(session.kv_cache_bytes)
            else:
                del session
                session = model.session(max_context=48)
                seen.append(None)
        except moe.MoeError as e:
            seen.append(f"{type(e).__name__}: {e}")
    return seen


def test_random_orders_on_eight_threads_replay_identically():
    model = moe.Model(fixture_dir("mixtral"))
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> list:
        barrier.wait()
        return script(model, 500 + i, 60)

    with ThreadPoolExecutor(THREADS) as pool:
        concurrent = list(pool.map(run, range(THREADS)))
    for i, got in enumerate(concurrent):
        assert got == script(model, 500 + i, 60), f"thread {i}"
        assert any(isinstance(x, str) for x in got), "no call failed: the script lost its errors"
