"""FFCNN: label channels, shapes, TryAll scores, the classifier head, training on digits."""

from __future__ import annotations

import json
import time
from typing import Any

import ffcore
import pytest
import torch
from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError
from ffcore.interfaces import Batch, Classifier, LabelScorer, LayerStepResult, Split
from ffcore.interfaces.layer import FFLayer
from ffcore.training import build_run, evaluate, train
from torch import Tensor

from fflib_conv import FFCNN, FFConv2d

SMALL: dict[str, Any] = {"layers": [4, 6], "dense": [12]}


def make(input_shape: tuple[int, ...] = (1, 8, 8), **options: Any) -> FFCNN:
    torch.manual_seed(0)
    model = ffcore.create_model(
        "ffcnn", input_shape=input_shape, num_classes=5, **{**SMALL, **options}
    )
    assert isinstance(model, FFCNN)
    return model


def test_layers_and_parameters() -> None:
    model = make()
    first, second, dense = model.layers
    assert isinstance(first, FFConv2d) and isinstance(second, FFConv2d)
    assert (first.in_channels, first.out_channels, second.out_channels) == (1 + 5, 4, 6)
    assert isinstance(dense, FFLayer) and not isinstance(dense, FFConv2d)
    # 8x8 -> pool 2 -> 4x4 -> pool 2 -> 2x2; the dense layer also sees the label code
    conv = (6 * 9 * 4 + 4) + (4 * 9 * 6 + 6)
    features = 4 * 4 * 4 + 6 * 2 * 2 + 12
    expected = conv + (6 * 2 * 2 + 5) * 12 + 12 + features * 5 + 5
    assert sum(p.numel() for p in model.parameters()) == expected
    assert len(model.optimizers()) == 4  # three layers and the classifier head
    assert isinstance(model, LabelScorer) and isinstance(model, Classifier)
    assert model.default_probe == "tryall"


def test_label_enters_as_one_hot_planes() -> None:
    model = make(label_scale=2.0)
    x = torch.randn(3, 1, 8, 8)
    embedded = model.embed(x, torch.tensor([0, 4, 2]))
    assert embedded.shape == (3, 1 + 5, 8, 8)
    assert torch.equal(embedded[:, :1], x)
    assert torch.equal(embedded[1, 1 + 4], torch.full((8, 8), 2.0))
    assert embedded[1, 1:].sum() == 2.0 * 64
    assert torch.equal(model.neutral_input(x)[:, 1:], torch.zeros(3, 5, 8, 8))
    with pytest.raises(InvalidValueError, match="labels"):
        model.embed(x, torch.tensor([0, 5, 1]))


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (8, 8), (3, 7, 9)])
def test_shapes(input_shape: tuple[int, ...]) -> None:
    model = make(input_shape)
    channels = 1 if len(input_shape) == 2 else input_shape[0]
    x = torch.randn(4, channels, *input_shape[-2:])
    assert model.goodness_per_label(x).shape == (4, 5)
    assert model.logits(x).shape == (4, 5)
    activations = model(x, torch.tensor([0, 1, 2, 3]))
    assert [a.shape[0] for a in activations] == [4, 4, 4]
    assert activations[-1].shape == (4, 12)
    with pytest.raises(InvalidValueError, match="input shape"):
        model.goodness_per_label(torch.randn(4, channels, 5, 5))


def test_goodness_per_label_matches_each_label_alone() -> None:
    model = make()
    sampler = ffcore.create_negatives("random")
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
    for _ in range(3):
        model.train_batch(Batch(x, y), sampler)
    x = torch.randn(7, 1, 8, 8)
    scores = model.goodness_per_label(x)
    for label in range(5):
        alone = model.goodness(x, torch.full((7,), label))
        assert torch.allclose(scores[:, label], alone, atol=1e-4)
    model.eval_chunk_elements = 1  # one sample per chunk: the same scores
    assert torch.allclose(model.goodness_per_label(x), scores, atol=1e-5)
    model.layer_range = (1, 2)  # only the second conv layer
    second = model.layers[1]
    assert isinstance(second, FFConv2d)
    labels = torch.full((7,), 3)
    expected = second.score(model(x, labels)[1])
    assert torch.allclose(model.goodness_per_label(x)[:, 3], expected, atol=1e-4)


def test_training_reports_each_layer_and_keeps_inputs_detached() -> None:
    model = make()
    steps: list[tuple[int, LayerStepResult]] = []

    class Recorder:
        def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
            steps.append((index, result))

    model.observer = Recorder()
    x = torch.randn(6, 1, 8, 8, requires_grad=True)
    loss = model.train_batch(Batch(x, torch.randint(0, 5, (6,))), ffcore.create_negatives("random"))
    assert loss.shape == () and loss.grad_fn is None
    assert x.grad is None
    assert [index for index, _ in steps] == [0, 1, 2]
    assert steps[0][1].h_pos.shape == (6, 4, 4, 4) and steps[2][1].g_neg.shape == (6,)


def test_schedules() -> None:
    model = make(schedule="two-phase", ff_epochs=1)
    first = model.layers[0]
    assert isinstance(first, FFConv2d)
    sampler = ffcore.create_negatives("random")
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 5, (8,))
    model.on_epoch_start(0, 3)
    head = model.classifier.weight.clone()
    conv = first.conv.weight.clone()
    model.train_batch(Batch(x, y), sampler)
    assert torch.equal(model.classifier.weight, head)  # phase 1: FF layers only
    assert not torch.equal(first.conv.weight, conv)
    model.on_epoch_start(1, 3)
    conv = first.conv.weight.clone()
    model.train_batch(Batch(x, y), sampler)
    assert not torch.equal(model.classifier.weight, head)  # phase 2: the head only
    assert torch.equal(first.conv.weight, conv)
    joint = make()
    joint.on_epoch_start(0, 3)
    assert joint.phase == "both"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"layers": []}, "layers"),
        ({"layers": [4, 0]}, "layers"),
        ({"layers": [4, 4, 4, 4]}, "layers"),  # 8x8 pooled four times vanishes
        ({"kernel_size": [3]}, "kernel_size"),
        ({"pool": -1}, "pool"),
        ({"dense": 12}, "dense"),
        ({"dense": [12, 0]}, "dense"),
        ({"padding": "full"}, "padding"),
        ({"schedule": "later"}, "schedule"),
        ({"ff_epochs": -1}, "ff_epochs"),
        ({"layer_range": "5:"}, "layer_range"),
        ({"layer_range": "x"}, "layer_range"),
        ({"label_scale": 0}, "label_scale"),
        ({"dense_label": "yes"}, "dense_label"),
        ({"input_norm_over": "rows"}, "input_norm_over"),
        ({"norm_over": "rows"}, "norm_over"),
        ({"goodness_reduce": "max"}, "goodness_reduce"),
        ({"lr": 0}, "lr"),
        ({"dense_lr": -1.0}, "dense_lr"),
        ({"classifier_lr": "fast"}, "classifier_lr"),
        ({"objective": "contrastive"}, "objective"),
        ({"pool_placement": "before"}, "pool_placement"),
        ({"output_norm": "layer"}, "output_norm"),
        ({"weight_init": "xavier"}, "weight_init"),
        ({"augment": "rotate"}, "augment"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        make(**options)
    assert info.value.field == field


def test_non_image_input_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="input_shape"):
        ffcore.create_model("ffcnn", input_shape=(2,), num_classes=2)


def test_options_are_json_and_rebuild_the_same_model() -> None:
    options: dict[str, Any] = {
        "layers": [4, 6],
        "kernel_size": [5, 3],
        "pool": [2, 1],
        "dense": [],
        "goodness_reduce": "sum",
        "layer_range": "1:",
    }
    json.dumps(options)
    model = make(**options)
    again = make(**options)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(model.goodness_per_label(x), again.goodness_per_label(x))
    assert model.extra_summary()["layer_range"] == [1, 2]
    second = model.layers[1]
    assert isinstance(second, FFConv2d) and second.threshold == 6.0 * 4 * 4


def accuracy(model: FFCNN, x: Tensor, y: Tensor, probe: str) -> float:
    return evaluate(model, ffcore.create_probe(probe), Split(x, y))


def test_short_training_run_on_digits_is_well_above_chance() -> None:
    config = TrainConfig(
        model="ffcnn",
        dataset="digits",
        layers=[16, 32],
        lr=0.01,
        epochs=8,
        device="cpu",
        val_split=0.0,
        model_options={"dense": []},
    )
    started = time.perf_counter()
    run = build_run(config)
    metrics = train(run)
    assert metrics["test_acc"] > 0.5  # chance is 0.1
    assert isinstance(run.model, FFCNN)
    test = run.data.test
    assert accuracy(run.model, test.x, test.y, "classifier") > 0.75  # the FF+C style head
    assert time.perf_counter() - started < 30


def test_first_dense_layer_reads_the_label_code() -> None:
    seen: list[Tensor] = []
    model = make(label_scale=0.5)
    handle = model.layers[2].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    model(torch.randn(3, 1, 8, 8), torch.tensor([1, 0, 4]))
    handle.remove()
    assert seen[0].shape == (3, 6 * 2 * 2 + 5)
    assert torch.equal(seen[0][:, -5:], torch.eye(5)[[1, 0, 4]] * 0.5)
    without = make(dense_label=False)
    dense = without.layers[2]
    assert isinstance(dense, FFLayer)
    assert sum(p.numel() for p in dense.parameters()) == 6 * 2 * 2 * 12 + 12


def test_next_input_pooling_lets_the_goodness_see_the_full_map() -> None:
    model = make(pool_placement="next-input", pool=[2, 1])
    first, second = model.layers[0], model.layers[1]
    assert isinstance(first, FFConv2d) and isinstance(second, FFConv2d)
    assert (first.pool_size, first.input_pool_size) == (1, 1)
    assert (second.pool_size, second.input_pool_size) == (1, 2)
    activations = model(torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2]))
    assert activations[0].shape == (3, 4, 8, 8) and activations[1].shape == (3, 6, 4, 4)
    x = torch.randn(4, 1, 8, 8)
    scores = model.goodness_per_label(x)  # the first layer's shared-work path pools too
    for label in range(5):
        y = torch.full((4,), label)
        assert torch.allclose(scores[:, label], model.goodness(x, y), atol=1e-5)


def test_batch_norm_layers_train_and_use_running_statistics_in_eval() -> None:
    model = make(output_norm="batch", weight_init="kaiming", weight_decay=0.01)
    layer = model.layers[0]
    assert isinstance(layer, FFConv2d) and isinstance(layer.bn, torch.nn.BatchNorm2d)
    assert layer.optimizer.param_groups[0]["weight_decay"] == 0.01
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
    model.train_batch(Batch(x, y), ffcore.create_negatives("random"))
    tracked = layer.bn.num_batches_tracked
    assert tracked is not None and tracked.item() > 0
    model.eval()
    one = model.goodness_per_label(x[:1])
    assert torch.allclose(one, model.goodness_per_label(x)[:1], atol=1e-5)  # no batch stats
