"""One way to rebuild a run's data: training, ``ff eval`` and ``ff debug`` share it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ffcore.checkpoint import read_checkpoint
from ffcore.cli.main import cli
from ffcore.config import TrainConfig
from ffcore.errors import DataError, InvalidValueError
from ffcore.run_data import dataset_kwargs, load_saved_data
from ffcore.runs import save_run
from ffcore.training import build_run, train


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    config = TrainConfig(layers=[8], epochs=1, device="cpu", use=0.5, seed=3)
    run = build_run(config)
    return save_run(run, tmp_path / "digits.pt", train(run))


def test_the_saved_options_rebuild_the_training_data(checkpoint: Path) -> None:
    meta = read_checkpoint(checkpoint)["meta"]
    assert meta["dataset"]["options"] == {"val_split": 0.1, "use": 0.5, "seed": 3}
    assert dataset_kwargs(TrainConfig(use=0.5, seed=3)) == meta["dataset"]["options"]
    data = load_saved_data(meta)
    trained_on = build_run(TrainConfig(layers=[8], epochs=1, device="cpu", use=0.5, seed=3))
    assert data.test.x.equal(trained_on.data.test.x.cpu())


@pytest.mark.parametrize("command", ["eval", "debug"])
def test_every_command_refuses_data_of_another_shape(
    checkpoint: Path, command: str, tmp_path: Path
) -> None:
    extra = ["--logdir", str(tmp_path / "tb")] if command == "debug" else []
    result = invoke(command, str(checkpoint), "--dataset", "xor", *extra)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: dataset 'xor' has inputs of shape (2,) and 2 classes; "
        "the model takes (1, 8, 8) and 10"
    )


@pytest.mark.parametrize("command", ["eval", "debug"])
def test_every_command_refuses_a_data_root_the_data_set_does_not_read(
    checkpoint: Path, command: str, tmp_path: Path
) -> None:
    extra = ["--logdir", str(tmp_path / "tb")] if command == "debug" else []
    result = invoke(command, str(checkpoint), "--data-root", str(tmp_path), *extra)
    assert result.exit_code == 2, result.output
    assert "no data root: dataset 'digits' needs no files" in result.output


def test_a_description_without_a_data_set_asks_for_one(checkpoint: Path) -> None:
    meta = read_checkpoint(checkpoint)["meta"]
    del meta["dataset"]
    with pytest.raises(DataError, match="names no data set: pass --dataset NAME"):
        load_saved_data(meta)
    assert load_saved_data(meta, dataset="digits").num_classes == 10
    with pytest.raises(InvalidValueError, match="data_root"):
        load_saved_data(meta, dataset="digits", data_root="/data")
