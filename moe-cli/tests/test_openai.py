"""`moe serve` driven by the official `openai` Python client (and raw HTTP for what the client
cannot send). Each fixture starts `moe serve --port 0` on the shipped demo model (or a copy of it
given a chat template) and stops it afterwards; `moe run` is the library-side reference.

Run: MOE_BIN=target/release/moe python -m pytest moe-cli/tests/test_openai.py   (.ci/server.sh does)
"""

import http.client
import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
MOE = os.environ.get("MOE_BIN") or str(ROOT / "target" / "release" / "moe")
DEMO = ROOT / "models" / "tiny-deepseek-pycode"
MODEL = "tiny-deepseek-pycode"
PROMPT = "import os\n\n\ndef "
# A chat template in Python comments, so the demo model (trained on Python code) can continue it.
CHAT_TEMPLATE = (
    "{% for m in messages %}# {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}# assistant:{% endif %}"
)


class Server:
    """A `moe serve` process on a free port."""

    def __init__(self, *args, model=DEMO):
        self.proc = subprocess.Popen(
            [MOE, "serve", "--model", str(model), "--port", "0", "--threads", "2", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        lines = queue.Queue()
        self.log = []

        def drain():
            for line in self.proc.stderr:
                self.log.append(line)
                lines.put(line)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.time() + 60
        self.url = None
        while self.url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                line = ""
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
            elif time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("moe serve did not start:\n" + "".join(self.log))
        while get(self.url + "/health")[0] != 200:
            time.sleep(0.05)

    def client(self, **kw):
        kw.setdefault("api_key", "unused")
        return openai.OpenAI(base_url=self.url + "/v1", max_retries=0, timeout=120, **kw)

    def metric(self, name):
        status, body = get(self.url + "/metrics")
        assert status == 200
        m = re.search(rf"^{name} (\S+)$", body, re.M)
        assert m, f"{name} not in /metrics:\n{body}"
        return float(m.group(1))

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def post(url, body, headers=None):
    """POSTs raw bytes (or a JSON-encodable object); returns (status, headers with lower-case names,
    parsed JSON or text)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, text = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read().decode()
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


def moe_run(*args, model=DEMO):
    """`moe run` (the library's text generation on one session), its stdout."""
    r = subprocess.run(
        [MOE, "run", "--model", str(model), "--threads", "2", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def reference_text(prompt, max_tokens, *extra, model=DEMO):
    out = moe_run("--prompt", prompt, "--max-tokens", str(max_tokens), "--no-echo", *extra, model=model)
    assert out.endswith("\n")
    return out[:-1]


def reference_logprobs(prompt, max_tokens, top, *extra, model=DEMO):
    lines = moe_run(
        "--prompt", prompt, "--max-tokens", str(max_tokens), "--logprobs", str(top), *extra, model=model
    ).splitlines()
    rows = [json.loads(line) for line in lines]
    return rows[:-1], rows[-1]


@pytest.fixture(scope="module")
def server():
    s = Server("--max-batch", "8")
    yield s
    s.close()


@pytest.fixture(scope="module")
def chat_model():
    with tempfile.TemporaryDirectory() as d:
        for f in DEMO.iterdir():
            if f.name != "tokenizer_config.json":
                os.symlink(f, Path(d) / f.name)
        cfg = json.loads((DEMO / "tokenizer_config.json").read_text())
        cfg["chat_template"] = CHAT_TEMPLATE
        (Path(d) / "tokenizer_config.json").write_text(json.dumps(cfg))
        yield Path(d)


@pytest.fixture(scope="module")
def chat_server(chat_model):
    s = Server("--served-model-name", "chat-demo", model=chat_model)
    yield s
    s.close()


def test_health_and_models(server):
    assert get(server.url + "/health") == (200, '{"status":"ok"}')
    models = server.client().models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_completion_equals_the_library(server):
    want = reference_text(PROMPT, 24)
    c = server.client().completions.create(model=MODEL, prompt=PROMPT, max_tokens=24, temperature=0)
    assert c.object == "text_completion"
    assert c.choices[0].text == want
    assert len(want) > 10
    assert c.choices[0].finish_reason in ("length", "stop")
    assert c.usage.completion_tokens <= 24
    assert c.usage.prompt_tokens > 0
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens


def test_chat_without_a_template_is_a_clear_400(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert "no chat template" in str(e.value)
    assert e.value.body["code"] == "chat_template_missing"


def test_chat_completion_equals_the_library(chat_server, chat_model):
    msg = "write a function that adds two numbers"
    want = reference_text(msg, 24, "--chat", model=chat_model)
    c = chat_server.client().chat.completions.create(
        model="chat-demo", messages=[{"role": "user", "content": msg}], max_tokens=24, temperature=0
    )
    assert c.object == "chat.completion"
    assert c.choices[0].message.role == "assistant"
    assert c.choices[0].message.content == want
    assert len(want) > 5


def test_streaming_equals_non_streaming(server, chat_server):
    client = server.client()
    whole = client.completions.create(model=MODEL, prompt="class ", max_tokens=40, temperature=0)
    pieces, finish = [], None
    for chunk in client.completions.create(
        model=MODEL, prompt="class ", max_tokens=40, temperature=0, stream=True
    ):
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    assert len(pieces) > 3
    assert "".join(pieces) == whole.choices[0].text
    assert finish == whole.choices[0].finish_reason

    chat = chat_server.client()
    msgs = [{"role": "system", "content": "python only"}, {"role": "user", "content": "sort a list"}]
    whole = chat.chat.completions.create(model="chat-demo", messages=msgs, max_tokens=30, temperature=0)
    stream = chat.chat.completions.create(
        model="chat-demo",
        messages=msgs,
        max_tokens=30,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, roles = "", None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            roles.append(ch.delta.role)
    assert roles[0] == "assistant"
    assert text == whole.choices[0].message.content
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_eight_concurrent_greedy_streams_equal_single_requests(server):
    client = server.client()
    prompts = ["def ", "import ", "class A", "    return ", "# ", "from os import ", "x = ", "if "]
    single = [
        client.completions.create(model=MODEL, prompt=p, max_tokens=32, temperature=0).choices[0].text
        for p in prompts
    ]
    steps0, rows0 = server.metric("moe_steps_total"), server.metric("moe_batch_rows_total")
    barrier = threading.Barrier(len(prompts))

    def streamed(p):
        barrier.wait()
        out = client.completions.create(
            model=MODEL, prompt=p, max_tokens=32, temperature=0, stream=True
        )
        return "".join(c.choices[0].text for c in out)

    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(streamed, prompts))
    assert together == single
    steps, rows = server.metric("moe_steps_total") - steps0, server.metric("moe_batch_rows_total") - rows0
    # The requests shared forward steps: more sequences than steps.
    assert rows / steps > 1.5, (rows, steps)


def test_stop_strings(server):
    client = server.client()
    full = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40, temperature=0)
    text = full.choices[0].text
    stop = text[12:15]
    want = text[: text.find(stop)]
    c = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=40, temperature=0, stop=["@@never@@", stop]
    )
    assert c.choices[0].text == want
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.completion_tokens < full.usage.completion_tokens
    streamed = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=40, temperature=0, stop=stop, stream=True
    )
    assert "".join(ch.choices[0].text for ch in streamed) == want
    assert want == reference_text(PROMPT, 40, "--stop", stop)


def test_logprobs_equal_the_library(server, chat_server, chat_model):
    rows, summary = reference_logprobs(PROMPT, 12, 3)
    c = server.client().completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, logprobs=3
    )
    lp = c.choices[0].logprobs
    assert c.choices[0].text == summary["text"]
    assert len(lp.token_logprobs) == len(rows) == c.usage.completion_tokens
    for got, top, want in zip(lp.token_logprobs, lp.top_logprobs, rows):
        assert got == pytest.approx(want["logprob"], abs=1e-4)
        assert sorted(top.values(), reverse=True) == pytest.approx(
            [t["logprob"] for t in want["top_logprobs"]], abs=1e-4
        )
        # Greedy: the chosen token is the most likely one; probabilities are at most 1.
        assert got == pytest.approx(max(top.values()), abs=1e-9)
        assert sum(2.718281828459045 ** v for v in top.values()) <= 1 + 1e-9
    assert "".join(lp.tokens).startswith(c.choices[0].text[:1])

    msg = "print hello"
    rows, _ = reference_logprobs(msg, 8, 2, "--chat", model=chat_model)
    c = chat_server.client().chat.completions.create(
        model="chat-demo",
        messages=[{"role": "user", "content": msg}],
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = c.choices[0].logprobs.content
    assert len(content) == len(rows)
    for got, want in zip(content, rows):
        assert got.logprob == pytest.approx(want["logprob"], abs=1e-4)
        assert [t.logprob for t in got.top_logprobs] == pytest.approx(
            [t["logprob"] for t in want["top_logprobs"]], abs=1e-4
        )
        assert bytes(got.bytes).decode() == got.token


def test_sampling_is_seeded(server):
    client = server.client()
    kw = dict(model=MODEL, prompt=PROMPT, max_tokens=24, temperature=0.9, top_p=0.95)
    a = client.completions.create(seed=7, **kw).choices[0].text
    b = client.completions.create(seed=7, **kw).choices[0].text
    assert a == b
    assert a == reference_text(PROMPT, 24, "--temperature", "0.9", "--top-p", "0.95", "--seed", "7")


def test_malformed_requests_get_4xx_json(server):
    url = server.url + "/v1/completions"
    cases = [
        (b"{not json", 400, None),
        (b"[]", 400, None),
        ({"model": MODEL}, 400, "prompt"),
        ({"model": MODEL, "prompt": "x", "temperature": "hot"}, 400, "temperature"),
        ({"model": MODEL, "prompt": "x", "max_tokens": -3}, 400, "max_tokens"),
        ({"model": MODEL, "prompt": "x", "stop": {"a": 1}}, 400, "stop"),
        ({"model": MODEL, "prompt": [1, 2, 999999]}, 400, "prompt"),
        ({"model": MODEL, "prompt": "x", "max_tokens": 5000}, 400, "max_tokens"),
        ({"model": MODEL, "prompt": "x " * 2000, "max_tokens": 4}, 400, "prompt"),
        ({"model": MODEL, "prompt": "x", "n": 3}, 400, "n"),
        ({"model": "gpt-4", "prompt": "x"}, 404, "model"),
    ]
    for body, status, param in cases:
        got, _, err = post(url, body)
        assert got == status, (body[:80], got, err)
        assert isinstance(err, dict) and set(err["error"]) == {"message", "type", "param", "code"}, err
        assert err["error"]["message"]
        assert err["error"]["param"] == param, err
    # A body over --max-body-bytes (1 MiB) is refused from its Content-Length, before it is read.
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/v1/completions")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders(b'{"model": "' + b"x" * 1000)
    r = conn.getresponse()
    err = json.loads(r.read())
    assert r.status == 413 and err["error"]["code"] == "request_too_large", err
    conn.close()
    got, _, err = post(url, {"model": MODEL, "prompt": "x " * 600, "max_tokens": 900})
    assert got == 400 and err["error"]["code"] == "context_length_exceeded", err
    got, _, err = post(server.url + "/v1/no/such/path", {})
    assert got == 404 and "error" in err
    with pytest.raises(openai.BadRequestError):
        server.client().completions.create(model=MODEL, prompt="x", max_tokens=4, top_p=7)
    # Still serving.
    assert server.client().completions.create(model=MODEL, prompt="x", max_tokens=2).choices


def test_a_client_that_disconnects_cancels_its_sequence(server):
    cancelled = server.metric("moe_requests_cancelled_total")
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 900, "stream": True, "ignore_eos": True}
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    assert r.readline().startswith(b"data: ")
    conn.sock.shutdown(2)
    conn.close()
    deadline = time.time() + 30
    while server.metric("moe_requests_cancelled_total") <= cancelled:
        assert time.time() < deadline, "the abandoned sequence was not cancelled"
        time.sleep(0.05)
    # The cancelled sequence left the batch before its 900 tokens.
    assert server.metric("moe_batch_size") <= 1
    want = reference_text(PROMPT, 16)
    c = server.client().completions.create(model=MODEL, prompt=PROMPT, max_tokens=16, temperature=0)
    assert c.choices[0].text == want


def test_a_full_queue_answers_503_with_retry_after():
    s = Server("--max-batch", "1", "--max-queue", "1")
    try:
        host, port = s.url.removeprefix("http://").rsplit(":", 1)
        long = {"model": MODEL, "prompt": PROMPT, "max_tokens": 1000, "stream": True, "ignore_eos": True}
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(long), {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.readline().startswith(b"data: ")  # the batch's one place is taken
        queued = {"model": MODEL, "prompt": "def ", "max_tokens": 2}
        waiting = ThreadPoolExecutor(1).submit(post, s.url + "/v1/completions", queued)
        deadline = time.time() + 30
        while s.metric("moe_queue_depth") < 1:
            assert time.time() < deadline
            time.sleep(0.01)
        status, headers, err = post(s.url + "/v1/completions", queued)
        assert status == 503, err
        assert headers.get("retry-after") == "1"
        assert err["error"]["code"] == "server_overloaded"
        assert s.metric("moe_requests_rejected_overloaded_total") == 1
        conn.close()  # frees the place: the queued request runs
        assert waiting.result(timeout=60)[0] == 200
    finally:
        s.close()


def test_api_key_and_binding():
    r = subprocess.run(
        [MOE, "serve", "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "--api-key" in r.stderr
    s = Server("--api-key", "sekrit")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(api_key="wrong").models.list()
        assert get(s.url + "/metrics")[0] == 401
        assert get(s.url + "/health")[0] == 200
        c = s.client(api_key="sekrit").completions.create(model=MODEL, prompt="def ", max_tokens=3)
        assert c.usage.completion_tokens >= 1
    finally:
        s.close()


def test_long_prompts_prefill_in_chunks_beside_decoding(server):
    # Longer than two prefill chunks (--prefill-chunk 256), fed while other requests decode.
    code = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(60)) + "def "
    want = reference_text(code, 24)
    client = server.client()
    kw = dict(model=MODEL, max_tokens=300, temperature=0, extra_body={"ignore_eos": True})
    with ThreadPoolExecutor(4) as pool:
        others = [pool.submit(client.completions.create, prompt=p, **kw) for p in ["def ", "import ", "class "]]
        time.sleep(0.05)
        long = client.completions.create(model=MODEL, prompt=code, max_tokens=24, temperature=0)
        assert all(len(o.result().choices[0].text) > 0 for o in others)
    assert long.usage.prompt_tokens > 512
    assert long.choices[0].text == want
