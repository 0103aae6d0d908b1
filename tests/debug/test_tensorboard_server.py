"""A real TensorBoard server, on 127.0.0.1 only, serves a traced run's scalars over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.debug.helpers import events, scalars, tiny_config, train_tiny

#: The longest we wait for the server to start and load the run.
DEADLINE_SECONDS = 90.0
TAG = "epoch/train_loss"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode())


def test_tensorboard_serves_a_traced_scalar(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    train_tiny(tiny_config(logdir, layers=[8], epochs=2))
    expected = scalars(events(logdir), TAG)
    log = tmp_path / "tensorboard.log"
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    command += ["--host", "127.0.0.1", "--port", "0", "--load_fast", "false"]
    command += ["--reload_interval", "1"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with log.open("w") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=tmp_path
        )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        base = None
        while base is None:  # --port 0: the server picks a free port and says which
            assert server.poll() is None, f"tensorboard exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"tensorboard did not start: {log.read_text()}"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
            if found:
                base = f"http://127.0.0.1:{found.group(1)}"
            else:
                time.sleep(0.2)
        query = urllib.parse.urlencode({"run": ".", "tag": TAG})
        served: list[list[float]] = []
        while not served:
            assert server.poll() is None, f"tensorboard exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"no {TAG} served: {log.read_text()}"
            try:
                if "." in get_json(f"{base}/data/runs"):
                    served = get_json(f"{base}/data/plugin/scalars/scalars?{query}")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if not served:
                time.sleep(0.3)
        assert [int(step) for _, step, _ in served] == sorted(expected)
        for _, step, value in served:
            assert abs(value - expected[int(step)]) < 1e-6
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
