"""``ff train --nproc 2`` for real: torch's elastic launcher, two ranks, Ctrl-C, a rank
that dies, a layout that cannot run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ffcore.checkpoint import load_checkpoint, read_checkpoint
from tests.distributed.helpers import (
    ROOT,
    TIMEOUT,
    environment,
    ff,
    killer_plugin,
    run_ranks,
)

TINY = ["--preset", "plain", "--layers", "32,32", "--batch-size", "64"]


def test_ff_train_nproc_2_trains_prints_once_and_writes_one_checkpoint(tmp_path: Path) -> None:
    logdir, out = tmp_path / "tb", tmp_path / "run.pt"
    args = ["train", "--nproc", "2", *TINY, "-e", "2", "--parallel", "layers", "-o", str(out)]
    result = ff([*args, "--tensorboard", str(logdir), "--trace-every", "5"])
    assert result.returncode == 0, result.output
    lines = result.output.splitlines()
    for start in ("model ffnet", "processes: 2 (gloo", "epoch 1/2", "epoch 2/2", "test accuracy"):
        assert sum(line.startswith(start) for line in lines) == 1, (start, result.output)
    assert "parallel layers: layers 0 | 1" in result.output
    loaded = load_checkpoint(out)
    assert loaded.meta["epoch"] == 2 and loaded.meta["config"]["nproc"] == 2
    # each stage traced its own layer into the one run directory
    files = [path.name for path in logdir.iterdir()]
    assert sorted(name.rsplit(".", 1)[-1] for name in files) == ["rank0", "rank1"], files


def test_an_unsupported_layout_fails_with_its_error(tmp_path: Path) -> None:
    result = ff(["train", "--nproc", "2", *TINY, "--model", "ffrnn", "--parallel", "layers"])
    assert result.returncode == 2, result.output
    assert "Error: rank 0: --parallel layers cannot split model 'ffrnn'" in result.output
    assert "use --parallel data" in result.output
    assert "ff train --nproc 2: rank 0 (pid " in result.output  # the launcher's summary


def test_ctrl_c_on_the_launcher_stops_every_rank_with_one_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run.pt"
    command = [sys.executable, "-m", "ffcore.cli", "train", "--nproc", "2", *TINY]
    process = subprocess.Popen(
        [*command, "-e", "500", "-o", str(out)],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    training = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.split()[:2] == ["epoch", "1/500"]:
                training.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert training.wait(TIMEOUT), "".join(lines)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 128 + signal.SIGINT, "".join(lines)
        stopping = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    output = "".join(lines)
    assert output.count("SIGINT: stopped in epoch") == 1, output  # rank 0 says it, once
    assert f"ff train --resume {out}" in output
    assert stopping < 120
    meta = read_checkpoint(out)["meta"]
    assert not meta["complete"] and 1 <= meta["epoch"] < 500


def test_a_rank_that_dies_ends_the_run_naming_it(tmp_path: Path) -> None:
    env = environment(extra_paths=(killer_plugin(tmp_path / "plugin"),))
    started = time.monotonic()
    result = ff(
        ["train", "--nproc", "2", *TINY, "-e", "500", "-o", str(tmp_path / "r.pt")], env=env
    )
    assert result.returncode != 0
    assert "rank 1 (pid " in result.output and "was killed by SIGKILL" in result.output
    assert time.monotonic() - started < TIMEOUT


def test_without_a_launcher_the_survivor_names_the_rank_it_lost(tmp_path: Path) -> None:
    env = environment(extra_paths=(killer_plugin(tmp_path / "plugin"),))
    args = ["-m", "ffcore.cli", "train", *TINY, "-e", "500", "-o", str(tmp_path / "r.pt")]
    survivor, killed = run_ranks(args, env=env)
    assert killed.returncode == -signal.SIGKILL
    assert survivor.returncode == 2, survivor.output
    assert "rank 0: rank 0 lost contact with rank 1 while" in survivor.output
    assert not (tmp_path / "r.pt").exists()
