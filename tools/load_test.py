#!/usr/bin/env python3
"""A bounded load test of an OpenAI-compatible server (`moe serve`, vLLM, SGLang...): N streamed
completion requests, M at a time, all within a deadline. Prints the aggregate generation rate
(completion tokens / wall time), latency and time-to-first-token percentiles. Standard library only.

Usage: python3 tools/load_test.py --url http://127.0.0.1:8080 [--requests 64] [--concurrency 8]
           [--max-tokens 64] [--deadline 300] [--prompt TEXT] [--api-key KEY]
Exits 1 when a request failed or the deadline passed.
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait

PROMPTS = ["import os\n\n\ndef ", "class ", "def main():\n    ", "from collections import ", "# "]


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def one(url, model, prompt, max_tokens, headers, deadline):
    """One streamed completion: (latency s, time to first token s, completion tokens)."""
    u = urllib.parse.urlsplit(url)
    timeout = max(1.0, deadline - time.time())
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.time()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json", **headers})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    ttft, tokens = None, 0
    for raw in r:
        line = raw.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError(chunk["error"]["message"])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if ttft is None and chunk.get("choices") and chunk["choices"][0].get("text"):
            ttft = time.time() - t0
        if time.time() > deadline:
            raise TimeoutError("deadline passed")
    conn.close()
    latency = time.time() - t0
    return latency, ttft if ttft is not None else latency, tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", help="model id (default: the first of /v1/models)")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds for the whole run")
    ap.add_argument("--prompt", help="one prompt for every request (default: a few Python openings)")
    ap.add_argument("--api-key")
    a = ap.parse_args()
    if a.requests < 1 or a.concurrency < 1:
        ap.error("--requests and --concurrency must be at least 1")
    headers = {"Authorization": f"Bearer {a.api_key}"} if a.api_key else {}
    model = a.model
    if model is None:
        req = urllib.request.Request(a.url + "/v1/models", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            model = json.load(r)["data"][0]["id"]
    deadline = time.time() + a.deadline
    results, errors, lock = [], [], threading.Lock()

    def task(i):
        prompt = a.prompt if a.prompt is not None else PROMPTS[i % len(PROMPTS)]
        try:
            res = one(a.url, model, prompt, a.max_tokens, headers, deadline)
            with lock:
                results.append(res)
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            with lock:
                errors.append(f"request {i}: {e}")

    t0 = time.time()
    with ThreadPoolExecutor(a.concurrency) as pool:
        futures = [pool.submit(task, i) for i in range(a.requests)]
        wait(futures, timeout=max(0.0, deadline - time.time()) + 5)
    wall = time.time() - t0
    lat = [r[0] for r in results]
    ttft = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    print(f"model {model} at {a.url}: {len(results)}/{a.requests} requests ok, {a.concurrency} concurrent, max_tokens {a.max_tokens}")
    print(f"wall {wall:.2f} s, {tokens} completion tokens, {tokens / wall:.1f} tok/s aggregate, {len(results) / wall:.2f} req/s")
    print(f"latency p50 {percentile(lat, 0.5):.3f} s, p99 {percentile(lat, 0.99):.3f} s; "
          f"time to first token p50 {percentile(ttft, 0.5):.3f} s, p99 {percentile(ttft, 0.99):.3f} s")
    for e in errors[:10]:
        print("error:", e, file=sys.stderr)
    late = time.time() > deadline
    if late:
        print("error: the deadline passed", file=sys.stderr)
    sys.exit(1 if errors or late or len(results) < a.requests else 0)


if __name__ == "__main__":
    main()
