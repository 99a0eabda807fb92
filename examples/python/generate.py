#!/usr/bin/env python3
"""Streams generated text (or token ids) from a model with the `moe` Python package.

    python examples/python/generate.py                      # the shipped demo model, a Python prompt
    python examples/python/generate.py --prompt "import os\\n" --max-new-tokens 64 --temperature 0.7 --seed 1
    python examples/python/generate.py --model DIR --prompt-ids 1,2,3 --max-new-tokens 16
    python examples/python/generate.py --model DIR --chat --prompt "Hello"

Install the package first: `pip install ./moe-py` (see docs/python.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import moe

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "tiny-deepseek-pycode"
DEFAULT_PROMPT = "import os\n\n\ndef "


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEMO_MODEL, help="checkpoint folder (default: the demo model)")
    p.add_argument("--prompt", default=None, help="text prompt (\\n and \\t are unescaped)")
    p.add_argument("--prompt-ids", default=None, help="comma-separated token ids instead of text")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user message through the chat template")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (default: generation_config.json)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--max-context", type=int, default=None)
    return p.parse_args()


def unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")


def load(path: Path) -> moe.Model:
    """Loads the model, drawing a progress bar on stderr when it is a terminal."""

    def progress(done: int, total: int) -> None:
        bar = "#" * (30 * done // total)
        print(f"\rloading {path.name} [{bar:<30}] {done}/{total} layers", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    model = moe.Model(path, progress=progress if sys.stderr.isatty() else None)
    elapsed = time.perf_counter() - started
    clear = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{clear}loaded {path} ({model.architecture}, {model.num_layers} layers) in {elapsed:.2f}s", file=sys.stderr)
    return model


def main() -> int:
    args = parse_args()
    try:
        model = load(args.model)
        options = {
            "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "min_p": args.min_p,
            "repetition_penalty": args.repetition_penalty,
            "seed": args.seed,
            "max_context": args.max_context,
        }
        started = time.perf_counter()
        if args.prompt_ids is not None:
            ids = [int(t) for t in args.prompt_ids.split(",") if t.strip()]
            stream = model.generate(ids, **options)
            show = lambda token: f"{token} "
        else:
            prompt = unescape(args.prompt if args.prompt is not None else DEFAULT_PROMPT)
            stops = [unescape(s) for s in args.stop] if args.stop else None
            if args.chat:
                stream = model.chat([{"role": "user", "content": prompt}], stop=stops, **options)
            else:
                print(prompt, end="", flush=True)
                stream = model.generate(prompt, stop=stops, **options)
            show = str
        first_token = None
        for item in stream:
            if first_token is None:
                first_token = time.perf_counter() - started
            print(show(item), end="", flush=True)
        print()
        total = time.perf_counter() - started
        print(
            f"{stream.produced} tokens in {total:.2f}s; time to first token {first_token or total:.3f}s",
            file=sys.stderr,
        )
    except (moe.MoeError, OSError, ValueError, TypeError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
