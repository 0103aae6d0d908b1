"""Checkpoints: round trip through the registries, safe loading, atomic writes."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

import ffcore
from ffcore.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    atomic_write,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from ffcore.errors import CheckpointError
from ffcore.interfaces import Batch, FFModel
from ffcore.plugin_manager import configure_plugins

OPTIONS: dict[str, Any] = {"layers": [24, 16], "lr": 0.01, "layer_range": "1:"}


def trained_model() -> FFModel:
    torch.manual_seed(0)
    model = ffcore.create_model("ffnet", input_shape=(1, 8, 8), num_classes=10, **OPTIONS)
    sampler = ffcore.create_negatives("random")
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    for _ in range(3):
        model.train_batch(Batch(x, y), sampler)
    return model


def save(path: Path, model: FFModel) -> Path:
    return save_checkpoint(
        path,
        model,
        model_name="ffnet",
        model_options=OPTIONS,
        input_shape=(1, 8, 8),
        num_classes=10,
        extra={"epoch": 3},
    )


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = trained_model()
    path = save(tmp_path / "m.pt", model)
    loaded = load_checkpoint(path)
    x = torch.randn(8, 1, 8, 8)
    assert isinstance(loaded.model, type(model))
    assert torch.equal(model.goodness_per_label(x), loaded.model.goodness_per_label(x))  # type: ignore[operator]
    assert loaded.meta["epoch"] == 3
    assert loaded.meta["model"] == {
        "name": "ffnet",
        "plugin": "ffnet",
        "distribution": "fflib",
        "options": OPTIONS,
    }
    # per-layer optimizer state (Adam moments) comes back too
    before = model.optimizers()[0].state_dict()["state"]
    after = loaded.model.optimizers()[0].state_dict()["state"]
    assert before.keys() == after.keys()
    assert torch.equal(before[0]["exp_avg"], after[0]["exp_avg"])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_with_code_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT_NAME, "format_version": 1, "meta": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()
    plain_pickle = tmp_path / "plain.pkl"
    plain_pickle.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain_pickle)
    assert not marker.exists()


def test_truncated_foreign_and_newer_files_are_refused(tmp_path: Path) -> None:
    good = save(tmp_path / "good.pt", trained_model())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable FFLib checkpoint"):
        read_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an FFLib checkpoint"):
        read_checkpoint(foreign)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        read_checkpoint(text)
    newer = tmp_path / "newer.pt"
    torch.save({"format": FORMAT_NAME, "format_version": FORMAT_VERSION + 1, "meta": "{}"}, newer)
    with pytest.raises(CheckpointError, match="format version 2"):
        read_checkpoint(newer)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_missing_plugin_is_named(tmp_path: Path) -> None:
    path = save(tmp_path / "m.pt", trained_model())
    configure_plugins(disabled=["ffnet"])
    with pytest.raises(CheckpointError, match="needs model 'ffnet' from plugin 'ffnet'"):
        load_checkpoint(path)


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous good checkpoint")

    def explode(file: Any) -> None:
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, explode)
    assert target.read_bytes() == b"previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind
