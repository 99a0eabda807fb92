"""One model shared by sessions on several Python threads gives each the reference results."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from conftest import TOL, load_model, load_reference

import moe

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "tiny-deepseek-pycode"

THREADS = 6


def run_reference(model, ref):
    s = model.session()
    prefill = s.prefill(ref["input_ids"], all_logits=True)
    decode = np.stack([s.decode(int(t)) for t in ref["decode_ids"]])
    generated = list(model.generate(ref["input_ids"], max_new_tokens=len(ref["decode_ids"]), ignore_eos=True))
    return prefill, decode, generated


def test_threads_share_one_model():
    families = ["deepseek_v3", "qwen3_moe", "gpt_oss", "deepseek_v32"]
    models = {f: load_model(f) for f in families}
    refs = {f: load_reference(f) for f in families}
    barrier = threading.Barrier(THREADS)

    def work(i):
        family = families[i % len(families)]
        barrier.wait()  # start together so the calls really overlap
        return family, [run_reference(models[family], refs[family]) for _ in range(3)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))

    for family, runs in results:
        ref = refs[family]
        for prefill, decode, generated in runs:
            np.testing.assert_allclose(prefill, ref["prefill_logits"], rtol=0, atol=TOL)
            np.testing.assert_allclose(decode, ref["decode_logits"], rtol=0, atol=TOL)
            assert generated == ref["decode_ids"].tolist()


def test_one_session_used_from_two_threads_is_serialised():
    model, ref = load_model("qwen3_moe"), load_reference("qwen3_moe")
    s = model.session()
    ids = ref["input_ids"]
    barrier = threading.Barrier(2)

    def feed(part):
        barrier.wait()
        for t in part:
            s.decode(int(t))

    threads = [threading.Thread(target=feed, args=(ids[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(s) == len(ids)
    assert sorted(s.tokens) == sorted(ids.tolist())


def test_compute_releases_the_gil():
    """Another Python thread runs while a prefill computes.

    With a switch interval of one second, a thread holding the GIL is only asked to give it up after a
    second, so prefills of some milliseconds that kept the GIL would never let the spinner run. One
    that releases it lets the spinner in (the waiting thread may need an attempt or two to wake).
    """
    model = moe.Model(DEMO_MODEL)
    ids = list(range(1, 201))
    session = model.session()
    session.prefill(ids)  # warm up
    session.reset()
    ticks = 0
    done = threading.Event()

    def spin():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    spinner = threading.Thread(target=spin)
    ran = False
    try:
        spinner.start()
        time.sleep(0.05)  # sleeping releases the GIL: the spinner starts
        for _ in range(5):
            before = ticks
            session.prefill(ids, all_logits=True)
            ran = ticks > before
            session.reset()
            if ran:
                break
    finally:
        done.set()
        spinner.join()
        sys.setswitchinterval(old)
    assert ran, "the spinner never ran during prefill: the GIL was held"
