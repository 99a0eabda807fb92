#!/usr/bin/env python3
"""Runs the shell commands the README and docs/ mark as runnable, so the docs cannot drift from the
code. A fenced block whose info string is `sh runnable` (rendered as ordinary `sh`) is run as one
`bash -euo pipefail` script from the repository root; any failure fails the check. Blocks with
placeholders (paths to models that are not in the repository) are plain `sh` and are not run.

Usage: python3 tools/run_doc_commands.py [--list]     (ends with "doc-commands: N passed, M failed")
"""

import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```sh runnable[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
TIMEOUT_S = 1200


def blocks():
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            yield os.path.relpath(path, ROOT), line, m.group(1)


def main():
    found = list(blocks())
    if "--list" in sys.argv:
        for path, line, body in found:
            print(f"{path}:{line}\n{body}")
        return
    passed = failed = 0
    for path, line, body in found:
        print(f"-- {path}:{line}\n{body.rstrip()}", flush=True)
        t0 = time.time()
        try:
            r = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=ROOT,
                timeout=TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
            ok = r.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        print(f"-- {'ok' if ok else 'FAILED'} in {time.time() - t0:.0f} s", flush=True)
        passed, failed = passed + ok, failed + (not ok)
    if not found:
        print("no runnable blocks found", file=sys.stderr)
        failed += 1
    print(f"doc-commands: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
