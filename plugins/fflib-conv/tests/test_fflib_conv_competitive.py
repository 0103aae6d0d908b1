"""Channel-competitive ffcnn: class goodness and loss, the class-goodness probe, BatchNorm
layers in checkpoints, augmentation in training only, the Fashion-MNIST recipe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ffcore
import pytest
import torch
import torch.nn.functional as F
from ffcore import load
from ffcore.config import TrainConfig, read_config_file
from ffcore.errors import FFLibError, InvalidValueError
from ffcore.interfaces import Batch, LabelScorer
from ffcore.recipes import resolve_config, starting_preset
from ffcore.runs import save_run
from ffcore.training import build_run, train
from torch import Tensor, nn

from fflib_conv import FFCNN, FFConv2d
from fflib_conv.competitive import (
    ChannelCompetitiveCNN,
    class_goodness,
    competitive_loss,
    competitive_step,
)

CONFIG = Path(__file__).resolve().parents[3] / "examples" / "configs" / "ffcnn_fashion_mnist.toml"
SMALL: dict[str, Any] = {"objective": "channel-competitive", "layers": [10, 20], "pool": [2, 1]}


def make(input_shape: tuple[int, ...] = (1, 8, 8), **options: Any) -> ChannelCompetitiveCNN:
    torch.manual_seed(0)
    model = ffcore.create_model(
        "ffcnn", input_shape=input_shape, num_classes=5, **{**SMALL, **options}
    )
    assert isinstance(model, ChannelCompetitiveCNN)
    return model


def test_class_goodness_is_each_groups_mean_square() -> None:
    h = torch.randn(3, 6, 4, 5)
    g = class_goodness(h, 2)
    assert g.shape == (3, 2) and g.dtype == torch.float32
    assert torch.allclose(g[:, 0], h[:, :3].square().mean(dim=(1, 2, 3)))
    assert torch.allclose(g[:, 1], h[:, 3:].square().mean(dim=(1, 2, 3)))
    assert class_goodness(h.bfloat16(), 3).dtype == torch.float32
    with pytest.raises(InvalidValueError, match="out_channels"):
        class_goodness(h, 4)


def test_the_loss_is_cross_entropy_of_the_goodness() -> None:
    g = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    y = torch.tensor([1, 1])
    assert torch.isclose(competitive_loss(g, y), F.cross_entropy(g, y))


def test_a_step_raises_the_own_class_goodness_and_keeps_the_input_detached() -> None:
    torch.manual_seed(0)
    layer = ffcore.create_layer(
        "ffconv2d", in_channels=1, out_channels=4, norm="none", lr=0.05, output_norm="batch"
    )
    assert isinstance(layer, FFConv2d)
    x = torch.randn(32, 1, 6, 6, requires_grad=True)
    y = torch.randint(0, 2, (32,))
    first = competitive_step(layer, x, y, 2)
    for _ in range(20):
        last = competitive_step(layer, x, y, 2)
    assert x.grad is None and not first.h.requires_grad
    assert first.g.shape == (32,) and first.num_pos == 32
    assert float(last.loss) < float(first.loss)


def test_channels_must_split_into_the_classes() -> None:
    with pytest.raises(InvalidValueError, match=r"layers: \[10, 12\].*multiple of the 5"):
        make(layers=[10, 12])
    with pytest.raises(InvalidValueError, match="dense"):
        make(dense=[16])
    with pytest.raises(InvalidValueError, match="objective"):
        make(objective="contrastive")


def test_the_probe_reads_the_goodness_summed_over_the_layer_range() -> None:
    model = make(layers=[10, 20, 20], pool=[2, 1, 1], layer_range="1:").eval()
    x = torch.randn(7, 1, 8, 8)
    per_layer = model.layer_goodness(x)
    expected = per_layer[1] + per_layer[2]
    probe = ffcore.create_probe("class-goodness")
    probe.check(model)
    assert torch.allclose(probe.scores(model, x), expected)
    assert torch.equal(probe.predict(model, x), expected.argmax(dim=1))
    assert isinstance(model, LabelScorer)  # TryAll reads the same scores
    assert torch.allclose(ffcore.create_probe("tryall").scores(model, x), expected)
    assert ffcore.create_probe("goodness-argmax").predict(model, x).shape == (7,)


def test_the_probe_refuses_a_model_without_class_goodness() -> None:
    model = ffcore.create_model("ffcnn", input_shape=(1, 8, 8), num_classes=5, dense=[])
    assert isinstance(model, FFCNN)
    with pytest.raises(FFLibError, match="class-goodness"):
        ffcore.create_probe("class-goodness").check(model)
    with pytest.raises(FFLibError, match="class-goodness-mirrored"):
        ffcore.create_probe("class-goodness-mirrored").check(model)


def test_the_mirrored_probe_adds_the_goodness_of_both_views() -> None:
    model = make(layers=[10, 20], pool=[2, 1]).eval()
    x = torch.randn(6, 1, 8, 8)
    probe = ffcore.create_probe("class-goodness-mirrored")
    probe.check(model)
    expected = model.class_scores(x) + model.class_scores(x.flip(-1))
    assert torch.allclose(probe.scores(model, x), expected)
    # (B, H, W) is an image too; an image that is its own mirror scores twice over
    assert torch.allclose(probe.scores(model, x.squeeze(1)), expected)
    symmetric = x + x.flip(-1)
    assert torch.allclose(probe.scores(model, symmetric), 2 * model.class_scores(symmetric))


def first_layer_inputs(model: ChannelCompetitiveCNN, run: Any) -> list[Tensor]:
    seen: list[Tensor] = []
    handle = model.layers[0].register_forward_hook(lambda m, i, o: seen.append(i[0].clone()))
    run()
    handle.remove()
    return seen


def test_augmentation_applies_to_training_batches_only() -> None:
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 5, (6,))
    plain = make()
    shifted = make(augment="crop2,flip")
    prepared = plain.prepare(x)
    torch.manual_seed(1)
    (seen,) = first_layer_inputs(shifted, lambda: shifted.train_batch(Batch(x, y), None))  # type: ignore[arg-type]
    assert seen.shape == prepared.shape and not torch.allclose(seen, prepared)
    (seen,) = first_layer_inputs(plain, lambda: plain.train_batch(Batch(x, y), None))  # type: ignore[arg-type]
    assert torch.allclose(seen, prepared)
    shifted.eval()
    (seen,) = first_layer_inputs(shifted, lambda: shifted.class_scores(x))
    assert torch.allclose(seen, prepared)
    assert shifted.extra_summary()["augment"] == "crop2,flip"


def test_the_positive_negative_model_takes_augment_too() -> None:
    model = ffcore.create_model(
        "ffcnn", input_shape=(1, 8, 8), num_classes=5, dense=[], augment="flip"
    )
    assert isinstance(model, FFCNN) and model.augmentation.flip


def tiny_config(**settings: Any) -> TrainConfig:
    options = {**SMALL, "layers": [20, 40], "pool": 2, "optimizer": "adamw"}
    base: dict[str, Any] = {
        "model": "ffcnn",
        "dataset": "digits",
        "epochs": 3,
        "lr": 0.01,
        "device": "cpu",
        "batch_size": 64,
        "model_options": {**options, "weight_decay": 5e-4, "augment": "flip"},
    }
    return TrainConfig(**{**base, **settings})


def test_short_run_on_digits_learns_well_above_chance_and_checkpoints_batchnorm(
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    run = build_run(tiny_config())
    assert run.probe.__class__.__name__ == "ClassGoodness"  # the model's default probe
    metrics = train(run)
    assert metrics["test_acc"] > 0.7  # chance is 0.1
    assert time.perf_counter() - started < 10
    model = run.model
    assert isinstance(model, ChannelCompetitiveCNN)
    layer = model.layers[0]
    assert isinstance(layer, FFConv2d)
    assert layer.optimizer.param_groups[0]["weight_decay"] == 5e-4
    assert isinstance(layer.bn, nn.BatchNorm2d) and layer.bn.running_var is not None
    statistics = layer.bn.running_var.clone()
    assert not torch.equal(statistics, torch.ones_like(statistics))  # trained BN statistics
    path = save_run(run, tmp_path / "cw.pt", metrics)
    trained = load(path)
    loaded = trained.model
    assert isinstance(loaded, ChannelCompetitiveCNN) and not loaded.training
    loaded_layer = loaded.layers[0]
    assert isinstance(loaded_layer, FFConv2d) and isinstance(loaded_layer.bn, nn.BatchNorm2d)
    assert loaded_layer.bn.running_var is not None
    assert torch.equal(loaded_layer.bn.running_var, statistics)
    x = run.data.test.x[:50]
    preprocessing = run.data.preprocessing
    assert preprocessing is not None  # the checkpoint takes raw images
    raw = x * preprocessing.std[0] + preprocessing.mean[0]
    model.eval()
    assert torch.equal(trained.predict(raw), model.class_scores(x).argmax(dim=1))


def test_the_model_recipe_applies_to_ffcnn_on_fashion_mnist() -> None:
    start = starting_preset({}, {"model": "ffcnn", "dataset": "fashion-mnist"})
    assert (start.name, start.reason) == ("ffcnn-fashion-mnist", "model recipe")
    assert start.settings["model_options"]["objective"] == "channel-competitive"
    assert starting_preset({}, {"model": "ff-cnn", "dataset": "fashion_mnist"}).name == (
        "ffcnn-fashion-mnist"
    )
    assert starting_preset({}, {"dataset": "fashion-mnist"}).name == "fashion-mnist"
    assert starting_preset({}, {"model": "ffcnn", "dataset": "digits"}).name is None


def test_the_recipe_is_its_config_file() -> None:
    assert ffcore.get_preset("ffcnn-fashion-mnist") == read_config_file(CONFIG)


def test_the_recipe_builds_and_trains_on_cifar_sized_images() -> None:
    settings = ffcore.get_preset("ffcnn-fashion-mnist")
    options = {**settings["model_options"], "lr": settings["lr"]}
    torch.manual_seed(0)
    model = ffcore.create_model(
        "ffcnn", input_shape=(3, 32, 32), num_classes=10, layers=settings["layers"], **options
    )
    assert isinstance(model, ChannelCompetitiveCNN)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss = model.train_batch(Batch(x, y), None)  # type: ignore[arg-type]
    assert torch.isfinite(loss)
    assert model.eval().class_scores(x).shape == (8, 10)


def test_the_run_says_it_started_from_the_model_recipe() -> None:
    config = TrainConfig(model="ffcnn", dataset="fashion-mnist", download=False)
    resolved = resolve_config(config)
    assert resolved.config.model_options["objective"] == "channel-competitive"
    assert resolved.describe() == (
        "settings: the ffcnn-fashion-mnist recipe (preset 'ffcnn-fashion-mnist'); "
        "--preset plain for FFLib's generic defaults"
    )
