"""A signal at any moment of ``ff train`` leaves a checkpoint and says where it is.

The handler is held until the final checkpoint is on disk; the run is saved before the
test split is evaluated, so a signal during the test stops at once with the model saved;
a second signal stops at once too, naming the last checkpoint written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ffcore.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = ["train", "--preset", "plain", "--layers", "16", "--device", "cpu", "--val-split", "0"]


def start(mode: str, *args: str) -> subprocess.Popen[str]:
    """``ff ARGS`` with the signalling test plugin in ``mode``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.signalling_ff", mode, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_final_test_leaves_the_trained_run(
    tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "run.pt"
    process = start(
        "slow-test", *TINY, "--epochs", "2", "--probe", "slow-tryall", "--out", str(out)
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.strip() == "TESTING":
            break
    else:
        pytest.fail(f"the test split was never evaluated: {process.communicate()}")
    process.send_signal(signum)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, rest
    assert rest.strip() == (
        f"{signum.name}: stopped at once; the last checkpoint written is {out}; "
        f"continue with: ff train --resume {out}"
    )
    saved = load_checkpoint(out).meta
    assert (saved["epoch"], saved["complete"]) == (2, True)
    assert "test_acc" not in saved["metrics"]  # saved before the test


@pytest.mark.parametrize(("save_every", "last"), [(1, "run.pt"), (0, None)])
def test_a_second_signal_stops_at_once_naming_the_last_checkpoint(
    tmp_path: Path, save_every: int, last: str | None
) -> None:
    """Two SIGTERMs in epoch 2 (batch 256: 6 batches an epoch): the first asks for a stop
    after the batch, the second stops at once, before that save."""
    out = tmp_path / "run.pt"
    process = start(
        "twice-at-step:9",
        *TINY,
        "--epochs",
        "3",
        "--batch-size",
        "256",
        "--save-every",
        str(save_every),
        "--out",
        str(out),
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    if last is None:
        assert stderr.strip().endswith("SIGTERM: stopped at once; no checkpoint was written")
        assert not out.exists()
    else:
        assert stderr.strip().endswith(
            f"SIGTERM: stopped at once; the last checkpoint written is {out}; "
            f"continue with: ff train --resume {out}"
        )
        assert load_checkpoint(out).meta["epoch"] == 1  # the save of epoch 1, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ([last] if last else [])
