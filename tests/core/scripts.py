"""Starting a small Python script in a process of its own (to kill it, hold a lock, or see
what a fresh process does)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def start_script(script: Path, source: str, *args: str, ready: str) -> subprocess.Popen[str]:
    """Write ``source`` to ``script``, run it with ``args`` and wait until the first line it
    prints is ``ready`` (the point the test needs it to have reached)."""
    script.write_text(textwrap.dedent(source))
    process = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == ready
    except BaseException:
        process.kill()
        process.wait(timeout=30)
        raise
    return process


def run_in_a_fresh_process(code: str, env: dict[str, str]) -> str:
    """Run ``code`` with ``python -c`` under this environment plus ``env``; what it
    printed, stripped (the run must succeed)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
