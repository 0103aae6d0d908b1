"""FFCNN exports: its ONNX, TorchScript and torch.export graphs give ``predict``'s labels
and ``scores``' values, and its safetensors file loads back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ffcore import load
from ffcore.config import TrainConfig
from ffcore.export import export_model, run_exported
from ffcore.inference import TrainedModel
from ffcore.registry import load_dataset
from ffcore.runs import save_run
from ffcore.training import build_run, train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ffcore import plugin_manager

    plugin_manager.reset_plugins()
    settings = {"model": "ffcnn", "preset": "plain", "layers": [4, 8], "epochs": 1}
    run = build_run(TrainConfig(**settings, device="cpu", batch_size=64))  # type: ignore[arg-type]
    path = save_run(run, tmp_path_factory.mktemp("ffcnn") / "ffcnn.pt", train(run))
    plugin_manager.reset_plugins()
    return path


def raw_inputs(count: int) -> torch.Tensor:
    """``digits`` test images on the [0, 1] scale (what the graphs take)."""
    data = load_dataset("digits")
    assert data.preprocessing is not None
    mean, std = data.preprocessing.mean[0], data.preprocessing.std[0]
    return data.test.x[:count] * std + mean


def assert_graph_equals_predict(path: Path, fmt: str, trained: TrainedModel, count: int) -> None:
    """The exported graph's labels are ``predict``'s and its scores ``scores``' values."""
    x = raw_inputs(count)
    outputs = run_exported(path, fmt, x)
    assert outputs is not None
    scores, labels = outputs
    assert torch.equal(labels.long(), trained.predict(x))
    expected = trained.scores(x)
    tolerance = 1e-5 * float(expected.abs().max())
    assert torch.allclose(scores.detach().float(), expected, rtol=1e-4, atol=tolerance)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_ffcnn_graphs_equal_predict(fmt: str, checkpoint: Path, tmp_path: Path) -> None:
    trained = load(checkpoint)
    path = export_model(trained, fmt, tmp_path / f"ffcnn.{fmt}", check=False).path
    for count in (1, 33):
        assert_graph_equals_predict(path, fmt, trained, count)


def test_ffcnn_safetensors_round_trip(checkpoint: Path, tmp_path: Path) -> None:
    trained = load(checkpoint)
    result = export_model(trained, "safetensors", tmp_path / "ffcnn.safetensors")
    assert result.labels_equal is True
    x = raw_inputs(20)
    assert torch.equal(load(result.path).scores(x), trained.scores(x))


@pytest.fixture(scope="module")
def competitive_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ffcore import plugin_manager

    plugin_manager.reset_plugins()
    options = {"objective": "channel-competitive", "augment": "crop1,flip", "pool": [2, 1]}
    settings = {"model": "ffcnn", "preset": "plain", "layers": [10, 20], "epochs": 1}
    config = TrainConfig(
        **settings, model_options=options, device="cpu", batch_size=64  # type: ignore[arg-type]
    )
    run = build_run(config)
    path = save_run(run, tmp_path_factory.mktemp("cw") / "cw.pt", train(run))
    plugin_manager.reset_plugins()
    return path


def test_channel_competitive_graph_equals_predict(
    competitive_checkpoint: Path, tmp_path: Path
) -> None:
    fmt = "torchscript"  # the same graph as ONNX's, which the ffcnn tests above export
    trained = load(competitive_checkpoint)
    assert trained.probe_name == "class-goodness"  # the model's default probe
    path = export_model(trained, fmt, tmp_path / f"cw.{fmt}", check=False).path
    assert_graph_equals_predict(path, fmt, trained, 33)


def test_channel_competitive_safetensors_round_trip(
    competitive_checkpoint: Path, tmp_path: Path
) -> None:
    trained = load(competitive_checkpoint)
    result = export_model(trained, "safetensors", tmp_path / "cw.safetensors")
    assert result.labels_equal is True
    x = raw_inputs(20)
    assert torch.equal(load(result.path).scores(x), trained.scores(x))
