"""Each example script runs for one short epoch on the embedded digits data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ffcore.checkpoint import load_checkpoint

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "model", "extra"),
    [
        ("ff_net_mnist.py", "ffnet", []),
        ("ff_c_mnist.py", "ffc", ["--schedule", "joint"]),
        ("ff_rnn_mnist.py", "ffrnn", ["--frames", "3", "--test-frames", "2:3"]),
        ("bp_mnist.py", "bp", []),
    ],
)
def test_example_runs_one_short_epoch(
    script: str, model: str, extra: list[str], tmp_path: Path
) -> None:
    out = tmp_path / f"{model}.pt"
    command = [sys.executable, str(EXAMPLES / script), "--dataset", "digits", "-e", "1"]
    result = subprocess.run(
        [*command, "-u", "0.3", "--device", "cpu", "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and "test accuracy:" in result.stdout
    loaded = load_checkpoint(out)
    assert loaded.meta["model"]["name"] == model
    assert loaded.meta["epoch"] == 1


def test_example_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "ff_net_mnist.py"), "--dataset", "nope", "-e", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown dataset 'nope'")
