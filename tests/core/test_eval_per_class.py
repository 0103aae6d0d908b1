"""``ff eval --per-class``: precision, recall and F1 per class, the confusion matrix, and
its labelled image in TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
    EventAccumulator,
)

from ffcore.cli.main import cli
from ffcore.eval_report import confusion_image, confusion_lines
from ffcore.metrics import accuracy, confusion_matrix, per_class
from tests.core.usage_helpers import train_tiny


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_confusion_matrix_and_per_class_numbers() -> None:
    y_true = torch.tensor([0, 0, 0, 1, 1, 2])
    y_pred = torch.tensor([0, 0, 1, 1, 0, 1])
    confusion = confusion_matrix(y_true, y_pred, 3)
    assert confusion.tolist() == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    reports = per_class(confusion, ["a", "b", "c"])
    assert reports[0].precision == pytest.approx(2 / 3) and reports[0].recall == pytest.approx(
        2 / 3
    )
    assert reports[1].precision == pytest.approx(1 / 3) and reports[1].recall == pytest.approx(
        1 / 2
    )
    assert reports[2].precision is None and reports[2].recall == 0.0 and reports[2].f1 is None
    assert accuracy(confusion) == pytest.approx(3 / 6)
    lines = confusion_lines(confusion, ["a", "b", "c"])
    assert lines[2].split() == ["0", "a", "2", "1", "0"]


def test_confusion_image_is_labelled_rgb() -> None:
    confusion = torch.tensor([[5, 1], [0, 7]])
    plain = confusion_image(confusion, ["0", "1"])
    named = confusion_image(confusion, ["T-shirt/top", "Trouser"])
    assert plain.shape[0] == 3 and float(plain.min()) >= 0.0 and float(plain.max()) <= 1.0
    assert named.shape[2] > plain.shape[2]  # room for the names along the axes
    assert float(plain.mean()) < 1.0  # something is drawn


def test_eval_per_class_text_json_and_tensorboard(tmp_path: Path) -> None:
    checkpoint = str(train_tiny(tmp_path / "run.pt", epochs=2))
    plain = json.loads(run("eval", checkpoint, "--json").stdout)
    detailed = run("eval", checkpoint, "--per-class", "--json")
    assert detailed.exit_code == 0, detailed.output
    data = json.loads(detailed.stdout)
    assert data["test_acc"] == plain["test_acc"]
    matrix = torch.tensor(data["confusion_matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 360
    assert int(matrix.diagonal().sum()) / 360 == data["test_acc"]
    assert [row["support"] for row in data["per_class"]] == matrix.sum(dim=1).tolist()
    assert data["per_class"][3]["class"] == "3"
    logdir = tmp_path / "tb"
    text = run("eval", checkpoint, "--per-class", "--tensorboard", str(logdir))
    assert text.exit_code == 0, text.output
    assert "precision" in text.output and "rows: true class" in text.output
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert "eval/confusion_matrix" in events.Tags()["images"]
    image = events.Images("eval/confusion_matrix")[0]
    assert image.width > 10 * 30 and image.height > 10 * 30
    assert events.Scalars("eval/test_acc")[0].value == pytest.approx(data["test_acc"])


def test_eval_still_works_on_old_checkpoints_with_per_class() -> None:
    legacy = Path(__file__).resolve().parent.parent / "data" / "legacy" / "ffc-digits.pt"
    result = run("eval", str(legacy), "--per-class", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["per_class"]) == 10


def test_tensorboard_dir_that_is_a_file_is_one_error_line(tmp_path: Path) -> None:
    checkpoint = str(train_tiny(tmp_path / "run.pt"))
    (tmp_path / "file").write_text("x")
    result = run("eval", checkpoint, "--tensorboard", str(tmp_path / "file"))
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
