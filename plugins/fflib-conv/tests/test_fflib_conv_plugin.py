"""The installed distribution: its entry point, the CLI, checkpoints, resuming, disabling.

These tests need the plugin installed (``pip install ./plugins/fflib-conv``): FFLib finds
it through the ``fflib`` entry point of the ``fflib-conv`` distribution, like any other
third-party plugin, with no special case in the core.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import ffcore
import pytest
import torch
from click.testing import CliRunner, Result
from ffcore.checkpoint import load_checkpoint, save_checkpoint
from ffcore.cli.main import cli
from ffcore.config import TrainConfig
from ffcore.errors import CheckpointError
from ffcore.interfaces import Batch, FFLayer
from ffcore.plugin_manager import configure_plugins, get_plugin_manager
from ffcore.runs import resume_run, save_run
from ffcore.training import TrainingRun, build_run, train
from torch import Tensor

import fflib_conv
from fflib_conv import FFCNN

PLUGIN = "conv"
DISTRIBUTION = "fflib-conv"
TINY = [
    "--model",
    "ffcnn",
    "--dataset",
    "digits",
    "--layers",
    "4,8",
    "--epochs",
    "2",
    "--device",
    "cpu",
    "-O",
    "model.dense=[16]",
]


#: What the plugin registers, by kind.
COMPONENTS = {
    "layer": ["ffconv2d"],
    "model": ["ffcnn"],
    "preset": ["ffcnn-fashion-mnist"],
    "probe": ["class-goodness", "class-goodness-mirrored"],
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_registered_through_its_real_entry_point() -> None:
    (entry_point,) = [ep for ep in metadata.entry_points(group="fflib") if ep.name == PLUGIN]
    assert entry_point.value == "fflib_conv.plugin"
    assert entry_point.dist is not None and entry_point.dist.metadata["Name"] == DISTRIBUTION
    info = get_plugin_manager().plugin(PLUGIN)
    assert info is not None and info.error is None
    assert (info.distribution, info.version, info.builtin) == (DISTRIBUTION, "0.1.0", False)
    assert info.version == fflib_conv.__version__ == metadata.version(DISTRIBUTION)
    assert info.components == COMPONENTS
    assert ffcore.get_component("model", "ff_cnn").plugin == PLUGIN
    assert "ffconv2d" in ffcore.list_layers() and "ffcnn" in ffcore.list_models()


def test_list_plugins_shows_it_with_version_and_components() -> None:
    text = invoke("list-plugins").output
    assert f"{PLUGIN} ({DISTRIBUTION} 0.1.0)\n" in text
    assert "  layer      ffconv2d (alias ffconv): 2-D convolutional FF layer" in text
    assert "  model      ffcnn (alias ff-cnn): FF conv layers" in text
    listed = {p["name"]: p for p in json.loads(invoke("list-plugins", "--json").output)}
    assert listed[PLUGIN]["distribution"] == DISTRIBUTION
    assert listed[PLUGIN]["components"] == COMPONENTS


def test_ff_train_writes_a_checkpoint_that_ff_eval_retests(tmp_path: Path) -> None:
    out = tmp_path / "cnn.pt"
    trained = invoke("train", *TINY, "--out", str(out), "--json")
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.output)
    assert summary["model"] == "ffcnn" and summary["checkpoint"] == str(out)
    assert summary["config"]["model_options"] == {"dense": [16]}
    evaluated = invoke("eval", str(out), "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["model"] == "ffcnn" and report["probe"] == "tryall"
    assert report["test_acc"] == pytest.approx(summary["test_acc"])
    with_head = json.loads(invoke("eval", str(out), "--probe", "classifier", "--json").output)
    assert 0.0 <= with_head["test_acc"] <= 1.0
    stats = invoke("eval", str(out), "--stats")
    assert stats.exit_code == 0 and "layers.0.conv.weight" in stats.output


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    options = {"layers": [4, 8], "kernel_size": [5, 3], "dense": [16], "goodness_reduce": "sum"}
    torch.manual_seed(0)
    model = ffcore.create_model("ffcnn", input_shape=(1, 8, 8), num_classes=10, **options)
    sampler = ffcore.create_negatives("random")
    for _ in range(3):
        model.train_batch(Batch(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))), sampler)
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        model_name="ffcnn",
        model_options=options,
        input_shape=(1, 8, 8),
        num_classes=10,
    )
    loaded = load_checkpoint(path)
    assert isinstance(loaded.model, FFCNN) and isinstance(model, FFCNN)
    assert loaded.meta["model"] == {
        "name": "ffcnn",
        "plugin": PLUGIN,
        "distribution": DISTRIBUTION,
        "options": options,
    }
    x = torch.randn(6, 1, 8, 8)
    assert torch.equal(model.goodness_per_label(x), loaded.model.goodness_per_label(x))
    assert torch.equal(model.logits(x), loaded.model.logits(x))
    before = model.optimizers()[0].state_dict()["state"][0]["exp_avg"]
    after = loaded.model.optimizers()[0].state_dict()["state"][0]["exp_avg"]
    assert torch.equal(before, after)


def weights(run: TrainingRun) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def test_resume_continues_exactly(tmp_path: Path) -> None:
    settings = {
        "model": "ffcnn",
        "layers": [4, 8],
        "batch_size": 256,
        "lr_schedule": "constant",
        "device": "cpu",
        "model_options": {"dense": [16]},
    }
    straight = build_run(TrainConfig(epochs=2, **settings))  # type: ignore[arg-type]
    train(straight)
    first = build_run(TrainConfig(epochs=1, **settings))  # type: ignore[arg-type]
    train(first)
    path = save_run(first, tmp_path / "run.pt")
    resumed = resume_run(path, overrides={"epochs": 2})
    train(resumed)
    expected, got = weights(straight), weights(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_lifecycle_hooks_see_every_conv_layer() -> None:
    seen: list[tuple[int, str, tuple[int, ...], tuple[int, ...]]] = []

    class Watcher:
        @ffcore.hookimpl
        def fflib_layer_goodness(self, layer_index: int, layer: FFLayer, g_pos: Tensor) -> None:
            seen.append((layer_index, type(layer).__name__, tuple(g_pos.shape), ()))

        @ffcore.hookimpl
        def fflib_layer_activations(self, layer_index: int, h_pos: Tensor) -> None:
            seen.append((layer_index, "", (), tuple(h_pos.shape)))

    manager = get_plugin_manager()
    manager.register(Watcher(), name="watcher")
    config = TrainConfig(
        model="ffcnn", layers=[4], epochs=1, batch_size=1000, device="cpu", val_split=0.0
    )
    train(build_run(config))
    goodness = [(i, name, shape) for i, name, shape, _ in seen if name]
    assert goodness[:2] == [(0, "FFConv2d", (1000,)), (1, "FFDense", (1000,))]
    assert [shape for i, name, _, shape in seen if not name][:2] == [(1000, 4, 4, 4), (1000, 100)]


def test_disabled_plugin_is_dropped_and_its_checkpoint_refused(tmp_path: Path) -> None:
    out = tmp_path / "cnn.pt"
    assert invoke("train", *TINY, "--out", str(out)).exit_code == 0
    listed = json.loads(invoke("--disable-plugin", PLUGIN, "list-plugins", "--json").output)
    names = {p["name"] for p in listed if not p["disabled"]}
    assert PLUGIN not in names and "ffnet" in names
    assert "ffconv2d" not in invoke("-d", PLUGIN, "list-plugins").output
    configure_plugins(disabled=[PLUGIN])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(out)
    message = str(info.value)
    assert f"plugin '{PLUGIN}'" in message and f"distribution '{DISTRIBUTION}'" in message
    assert "needs model 'ffcnn'" in message
    refused = CliRunner().invoke(cli, ["-d", PLUGIN, "eval", str(out)])
    assert refused.exit_code == 2
    assert f"plugin '{PLUGIN}' (distribution '{DISTRIBUTION}')" in refused.output
    unknown = CliRunner().invoke(cli, ["-d", PLUGIN, "train", "--model", "ffcnn"])
    assert unknown.exit_code == 2 and "unknown model 'ffcnn'" in unknown.output
