"""Training progress: heartbeat lines without a terminal, a bar with one, quiet and verbose."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from torch import Tensor

from ffcore.cli.main import cli
from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError
from ffcore.progress import (
    BAR_READ_SECONDS,
    QUIET,
    VERBOSE,
    ConsoleProgress,
    SilentProgress,
    format_duration,
)
from ffcore.training import TrainingRun, build_run, train

HEARTBEAT = re.compile(
    r"^epoch (\d+)/2 batch (\d+)/11 loss [-+.\de]+ [\d,]+ samples/s ETA \d+:\d\d$"
)


class FakeClock:
    """A clock that moves ``step`` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class CountingLoss:
    """Stands for the trainer's on-device loss sum; counts how often it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __float__(self) -> float:
        self.reads += 1
        return 3.0


def tiny_run(**settings: Any) -> TrainingRun:
    """FFNet on digits: 1294 training samples, so 11 batches of 128 per epoch."""
    values: dict[str, Any] = {
        "preset": "plain",
        "layers": [8],
        "epochs": 2,
        "device": "cpu",
        **settings,
    }
    return build_run(TrainConfig(**values))


def test_without_a_terminal_a_heartbeat_line_comes_every_ten_seconds() -> None:
    out, err = io.StringIO(), io.StringIO()
    clock = FakeClock(step=4.0)  # each batch seems to take 4 s
    progress = ConsoleProgress(out=out, err=err, interactive=False, clock=clock)
    train(tiny_run(), progress=progress)
    beats = err.getvalue().splitlines()
    assert beats and all(HEARTBEAT.match(line) for line in beats), beats
    # 22 batches, 4 s apart, a line once at least 10 s have passed: every third batch
    assert len(beats) == 22 // 3
    first = HEARTBEAT.match(beats[0])
    assert first is not None and first.group(2) == "3"
    assert "epoch 2/2 batch" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("model ffnet (") and "on digits (1294 train" in lines[0]
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["1/2", "2/2"]
    assert lines[-1].startswith("test accuracy: ")


def test_a_fast_run_without_a_terminal_prints_no_heartbeat() -> None:
    out, err = io.StringIO(), io.StringIO()
    clock = FakeClock(step=0.01)
    train(tiny_run(), progress=ConsoleProgress(out=out, err=err, interactive=False, clock=clock))
    assert err.getvalue() == ""
    assert "epoch 2/2  loss" in out.getvalue()


def test_the_loss_is_read_only_when_a_heartbeat_is_due() -> None:
    clock = FakeClock(step=1.0)
    err = io.StringIO()
    progress = ConsoleProgress(out=io.StringIO(), err=err, interactive=False, clock=clock)
    progress.train_start(tiny_run(epochs=3))
    progress.epoch_start(1, 3, 11)
    loss = CountingLoss()
    for _ in range(11):
        progress.advance(cast(Tensor, loss))
    # one reading per heartbeat (every 10 s of the fake clock), not one per batch
    assert loss.reads == len(err.getvalue().splitlines()) == 1
    assert "loss 0.3 " in err.getvalue()  # 3.0 summed over 10 batches


def test_the_eta_covers_the_whole_run() -> None:
    clock = FakeClock(step=1.0)
    err = io.StringIO()
    progress = ConsoleProgress(
        out=io.StringIO(), err=err, interactive=False, clock=clock, heartbeat=5.0
    )
    progress.train_start(tiny_run(epochs=10))  # 110 batches in all
    progress.epoch_start(1, 10, 11)
    for _ in range(5):
        progress.advance(cast(Tensor, CountingLoss()))
    # 5 batches in 5 s (1 s each): 105 batches, 105 s, to go
    assert err.getvalue().rstrip().endswith("ETA 1:45")


def test_on_a_terminal_the_bar_shows_loss_rate_and_eta() -> None:
    out, err = io.StringIO(), io.StringIO()
    clock = FakeClock(step=BAR_READ_SECONDS)
    train(tiny_run(), progress=ConsoleProgress(out=out, err=err, interactive=True, clock=clock))
    drawn = err.getvalue()
    assert "epoch 1/2" in drawn and "/11, loss" in drawn
    assert re.search(r"loss [-+.\de]+ [\d,]+ samples/s ETA \d+:\d\d", drawn)
    assert "epoch 2/2  loss" in out.getvalue()


def test_quiet_shows_nothing_and_verbose_shows_settings_and_rates() -> None:
    quiet_out, quiet_err = io.StringIO(), io.StringIO()
    train(tiny_run(), progress=ConsoleProgress(QUIET, out=quiet_out, err=quiet_err))
    assert quiet_out.getvalue() == quiet_err.getvalue() == ""
    out = io.StringIO()
    train(tiny_run(), progress=ConsoleProgress(VERBOSE, out=out, err=io.StringIO()))
    text = out.getvalue()
    assert "every setting (value, origin):" in text
    assert re.search(r"^  layers +=  ?\[8\]  \(given\)$", text, re.MULTILINE), text
    assert re.search(r"^  batch_size += 128  \(default\)$", text, re.MULTILINE)
    assert re.search(r"^epoch 1/2 .* samples/s  lr [\d.e-]+$", text, re.MULTILINE)


def test_train_from_python_shows_progress_on_stderr_unless_told_not_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    train(tiny_run(epochs=1))
    shown = capsys.readouterr()
    assert shown.out == ""
    assert "model ffnet (" in shown.err and "epoch 1/1  loss" in shown.err
    assert "test accuracy: " in shown.err
    train(tiny_run(epochs=1), progress=None)
    assert capsys.readouterr() == ("", "")


def test_a_progress_object_gets_every_event() -> None:
    class Recorder(SilentProgress):
        def __init__(self) -> None:
            self.events: list[str] = []

        def train_start(self, run: TrainingRun) -> None:
            self.events.append("start")

        def advance(self, loss_sum: Tensor) -> None:
            self.events.append("batch")

        def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
            self.events.append(f"epoch {epoch}")

        def train_end(self, metrics: dict[str, float]) -> None:
            self.events.append(f"end {'test_acc' in metrics}")

    recorder = Recorder()
    train(tiny_run(epochs=1), progress=recorder)
    assert recorder.events == ["start", *["batch"] * 11, "epoch 1", "end True"]


def test_an_unknown_progress_name_is_a_clear_error() -> None:
    with pytest.raises(InvalidValueError, match="progress: 'bar'"):
        train(tiny_run(epochs=1), progress="bar")


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (80, "1:20"), (4000, "1:06:40"), (-3, "0:00")]
)
def test_durations_read_as_clock_times(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def _ff_train(tmp_path: Path, *args: str) -> str:
    command = ["train", "--preset", "plain", "--layers", "8", "--epochs", "2", "--device", "cpu"]
    result = CliRunner().invoke(cli, [*command, "-o", str(tmp_path / "r.pt"), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_ff_train_quiet_prints_only_the_result(tmp_path: Path) -> None:
    lines = _ff_train(tmp_path, "--quiet").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("test accuracy: ") and lines[1].startswith("checkpoint: ")


def test_ff_train_verbose_prints_every_setting_and_its_origin(tmp_path: Path) -> None:
    output = _ff_train(tmp_path, "-v")
    assert "every setting (value, origin):" in output
    assert re.search(r"^  preset += 'plain'  \(given\)$", output, re.MULTILINE)
    assert re.search(r"^epoch 2/2 .*  lr [\d.e-]+$", output, re.MULTILINE)


def test_ff_train_quiet_and_verbose_exclude_each_other(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "-q", "-v", "-o", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "--quiet and --verbose" in result.output
