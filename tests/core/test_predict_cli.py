"""``ff predict``: raw image files and tensor files, classified as ``ff eval`` classifies
the test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
import torch
from click.testing import CliRunner, Result
from torchvision.io import write_jpeg, write_png

from ffcore.cli.main import cli
from tests.core.usage_helpers import digits_raw_test, train_tiny, write_mnist_layout

TRAIN = ["--preset", "plain", "--layers", "32", "--epochs", "2", "--device", "cpu"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def accuracy_of(result: Result, labels: torch.Tensor) -> float:
    assert result.exit_code == 0, result.output
    predicted = [p["label"] for p in json.loads(result.stdout)["predictions"]]
    return sum(int(p == y) for p, y in zip(predicted, labels.tolist(), strict=True)) / len(labels)


def test_predicting_png_files_equals_eval_accuracy(tmp_path: Path) -> None:
    pixels, labels = write_mnist_layout(tmp_path / "data")
    checkpoint = str(tmp_path / "mnist.pt")
    data = ["--data-root", str(tmp_path / "data"), "--no-download"]
    trained = run("train", "--dataset", "mnist", *data, *TRAIN, "-o", checkpoint)
    assert trained.exit_code == 0, trained.output
    files = []
    for index, image in enumerate(pixels):
        files.append(str(tmp_path / f"{index:03d}.png"))
        write_png(image.unsqueeze(0), files[-1])
    predicted = run("predict", checkpoint, *files, "--json")
    evaluated = run("eval", checkpoint, *data, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert accuracy_of(predicted, labels) == json.loads(evaluated.stdout)["test_acc"]


def test_predicting_a_npy_of_raw_values_equals_eval_accuracy(tmp_path: Path) -> None:
    checkpoint = train_tiny(tmp_path / "digits.pt", epochs=2)
    raw, labels = digits_raw_test()
    numpy.save(tmp_path / "test.npy", raw.numpy())
    predicted = run("predict", str(checkpoint), str(tmp_path / "test.npy"), "--json")
    evaluated = run("eval", str(checkpoint), "--json")
    assert accuracy_of(predicted, labels) == json.loads(evaluated.stdout)["test_acc"]
    rows = json.loads(predicted.stdout)["predictions"]
    assert rows[5]["input"].endswith("test.npy[5]")


@pytest.fixture
def digits_checkpoint(tmp_path: Path) -> Path:
    return train_tiny(tmp_path / "digits.pt", epochs=2)


def test_json_gives_every_labels_score_and_the_top_k(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    raw, _ = digits_raw_test()
    torch.save(raw[:3], tmp_path / "three.pt")
    result = run("predict", str(digits_checkpoint), str(tmp_path / "three.pt"), "--json", "-k", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["score_kind"] == "goodness" and data["classes"] == [str(d) for d in range(10)]
    row = data["predictions"][0]
    assert len(row["scores"]) == 10 and sum(row["probabilities"]) == pytest.approx(1.0)
    assert row["label"] == max(range(10), key=lambda label: row["scores"][label])
    assert row["top_k"][0]["label"] == row["label"] and len(row["top_k"]) == 3
    assert row["top_k"][0]["probability"] >= row["top_k"][1]["probability"]


def test_table_output_and_image_conversions(digits_checkpoint: Path, tmp_path: Path) -> None:
    raw, _ = digits_raw_test()
    grey = (raw[0].int() * 255 // 16).to(torch.uint8).unsqueeze(0)
    write_png(grey, str(tmp_path / "grey.png"))
    write_png(grey.repeat(3, 1, 1), str(tmp_path / "rgb.png"))  # converted to one channel
    big = torch.nn.functional.interpolate(grey[None].float(), size=(32, 32)).to(torch.uint8)[0]
    write_jpeg(big.repeat(3, 1, 1), str(tmp_path / "big.jpg"))
    result = run(
        "predict", str(digits_checkpoint), str(tmp_path / "grey.png"), str(tmp_path / "rgb.png")
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["input", "label", "class", "probability", "score"]
    assert lines[1].split()[1] == lines[2].split()[1]  # grey and RGB: the same label
    refused = run("predict", str(digits_checkpoint), str(tmp_path / "big.jpg"))
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        f"Error: image {tmp_path / 'big.jpg'} is 32x32 pixels; the model takes 8x8: "
        "pass --resize to scale it"
    )
    resized = run(
        "predict", str(digits_checkpoint), str(tmp_path / "big.jpg"), "--resize", "-k", "2"
    )
    assert resized.exit_code == 0, resized.output
    assert len(resized.output.splitlines()) == 3 and "rank" in resized.output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: _write(d / "bad.png", b"not an image"), "cannot read image"),
        (lambda d: _pickled(d / "obj.pt"), "cannot read"),
        (lambda d: _dict_file(d / "dict.pt"), "holds a dict; expected one tensor"),
    ],
)
def test_bad_inputs_are_one_error_line(
    digits_checkpoint: Path, tmp_path: Path, make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    result = run("predict", str(digits_checkpoint), str(path))
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("Error: ") and message in result.output


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class Payload:
    """Not a tensor: torch.load(weights_only=True) refuses to unpickle it."""


def _pickled(path: Path) -> Path:
    torch.save(Payload(), path)
    return path


def _dict_file(path: Path) -> Path:
    torch.save({"x": torch.zeros(2)}, path)
    return path


def test_legacy_checkpoints_refuse_images_but_take_tensors(tmp_path: Path) -> None:
    legacy = Path(__file__).resolve().parent.parent / "data" / "legacy" / "ffnet-digits.pt"
    raw, _ = digits_raw_test()
    write_png((raw[0].int() * 255 // 16).to(torch.uint8).unsqueeze(0), str(tmp_path / "a.png"))
    refused = run("predict", str(legacy), str(tmp_path / "a.png"))
    assert refused.exit_code == 2 and "records no input preprocessing" in refused.output
    torch.save(torch.zeros(2, 1, 8, 8), tmp_path / "ready.pt")
    taken = run("predict", str(legacy), str(tmp_path / "ready.pt"))
    assert taken.exit_code == 0
    assert "Warning: " in taken.stderr and "records no input preprocessing" in taken.stderr
