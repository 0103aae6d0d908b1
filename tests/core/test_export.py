"""``ff export``: safetensors loads back; ONNX, TorchScript and torch.export graphs give
``predict``'s labels and ``scores``' values, for every batch size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from click.testing import CliRunner

import ffcore
from ffcore import plugin_manager
from ffcore.cli.export import FORMAT_CHOICES
from ffcore.cli.main import cli
from ffcore.errors import FFLibError
from ffcore.export import FORMATS, ExportError, export_model, read_description, run_exported
from ffcore.inference import TrainedModel
from ffcore.interfaces import Probe
from ffcore.layers import tracing
from tests.core.usage_helpers import digits_raw_test, train_tiny

MODELS: dict[str, dict[str, Any]] = {
    "ffnet": {},
    "ffc": {"model": "ffc", "epochs": 2},
    "ffrnn": {
        "model": "ffrnn",
        "layers": [16, 16],
        "model_options": {"frames": 4, "test_frames": "2:3"},
    },
    "bp": {"model": "bp"},
}
GRAPHS = ("onnx", "torchscript", "pt2")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    plugin_manager.reset_plugins()
    folder = tmp_path_factory.mktemp("export-models")
    found = {
        name: train_tiny(folder / f"{name}.pt", **settings) for name, settings in MODELS.items()
    }
    plugin_manager.reset_plugins()
    return found


def graph_inputs(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw test images and the same on the [0, 1] scale with a channel: the graph's input."""
    raw, _ = digits_raw_test()
    return raw[:count], raw[:count].unsqueeze(1).float() / 16.0


def assert_same_outputs(trained: TrainedModel, path: Path, fmt: str, count: int) -> None:
    raw, scaled = graph_inputs(count)
    outputs = run_exported(path, fmt, scaled)
    assert outputs is not None
    scores, labels = outputs
    expected = trained.scores(raw)
    assert torch.equal(labels.long(), trained.predict(raw))
    scale = float(expected.abs().max())
    assert torch.allclose(scores.detach().float(), expected, rtol=1e-4, atol=1e-5 * scale)


def test_the_cli_lists_the_formats_the_exporter_has() -> None:
    assert FORMAT_CHOICES == FORMATS


@pytest.mark.parametrize("fmt", GRAPHS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_graphs_equal_predict_and_scores(
    name: str, fmt: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    trained = ffcore.load(checkpoints[name])
    path = tmp_path / f"{name}.{fmt}"
    result = export_model(trained, fmt, path, check=False)
    assert result.path == path and path.stat().st_size > 0
    assert_same_outputs(trained, path, fmt, 40)  # another batch size than traced (4)
    assert_same_outputs(trained, path, fmt, 1)
    description = read_description(path)
    assert description["model"]["name"] == name
    assert description["graph"]["score_kind"] == trained.score_kind


def test_onnx_file_is_valid_and_carries_the_description(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    trained = ffcore.load(checkpoints["ffnet"])
    path = export_model(trained, "onnx", tmp_path / "m.onnx").path
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["scores", "label"]
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(meta["fflib"])["preprocessing"]["raw_max"] == 16.0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_safetensors_loads_back_as_the_same_model(
    name: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    trained = ffcore.load(checkpoints[name])
    result = export_model(trained, "safetensors", tmp_path / f"{name}.safetensors")
    assert result.labels_equal is True and result.max_score_difference == 0.0
    reloaded = ffcore.load(result.path)
    raw, _ = digits_raw_test()
    assert torch.equal(reloaded.scores(raw), trained.scores(raw))
    assert reloaded.classes == trained.classes and reloaded.preprocessing == trained.preprocessing
    assert reloaded.probe_name == trained.probe_name
    from safetensors import safe_open

    with safe_open(str(result.path), framework="pt") as file:
        assert json.loads(file.metadata()["fflib"])["model"]["name"] == name


def test_a_safetensors_file_of_another_origin_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(FFLibError, match="without an FFLib description"):
        ffcore.load(tmp_path / "other.safetensors")


class PredictOnly(Probe):
    def check(self, model: torch.nn.Module) -> None:
        pass

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], dtype=torch.long)


def test_what_cannot_be_exported_fails_naming_model_and_format(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = ffcore.load(checkpoints["ffnet"])
    monkeypatch.setattr(trained, "probe", PredictOnly())
    with pytest.raises(ExportError, match="model 'ffnet' with probe 'tryall' gives no per-label"):
        export_model(trained, "onnx", tmp_path / "x.onnx")
    traceable = ffcore.load(checkpoints["ffnet"])

    def untraceable(x: torch.Tensor) -> torch.Tensor:
        if tracing():
            raise RuntimeError("data-dependent control flow")
        return torch.zeros(x.shape[0], 10)

    monkeypatch.setattr(traceable.model, "goodness_per_label", untraceable)
    for fmt in GRAPHS:
        with pytest.raises(ExportError, match=f"model 'ffnet' .*cannot be exported to {fmt}: "):
            export_model(traceable, fmt, tmp_path / f"x.{fmt}")


def test_ff_export_command(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "m.pt2"
    result = runner.invoke(
        cli, ["export", str(checkpoints["ffc"]), "-f", "pt2", "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels_equal"] is True and summary["score_kind"] == "logits"
    assert summary["max_score_difference"] < 1e-4 and out.is_file()
    text = runner.invoke(cli, ["export", str(checkpoints["bp"]), "-f", "torchscript"])
    assert text.exit_code == 0, text.output
    assert "the same labels as the model" in text.output
    assert (checkpoints["bp"].parent / "bp.torchscript.pt").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args, message in (
        ([], "needs --format"),
        (["-f", "tflite"], "invalid --format: 'tflite'"),
        (["-f", "pt2", "-o", str(blocker / "m.pt2")], "cannot write"),
    ):
        bad = runner.invoke(cli, ["export", str(checkpoints["bp"]), *args])
        assert bad.exit_code == 2 and bad.output.startswith("Error: ") and message in bad.output
        assert len(bad.output.strip().splitlines()) == 1
