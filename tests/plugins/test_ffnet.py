"""FFNet: label embedding, layer ranges, goodness per label and greedy training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

import ffcore
import ffplugins.ffnet as ffnet_module
from ffcore.errors import InvalidValueError
from ffcore.interfaces import Batch, FFModel, NegativeBatch, NegativeSampler
from ffcore.layers import parse_layer_range
from ffplugins.dense import FFDense
from ffplugins.ffnet import FFNet, copy_major
from ffplugins.negatives import InverseLabels, RandomWrongLabel
from tests.plugins.helpers import StepRecorder, record_drives, record_rows


def _small_net(
    layers: Sequence[int] = (32, 16),
    input_shape: tuple[int, ...] = (1, 4, 4),
    num_classes: int = 5,
    **options: Any,
) -> FFNet:
    model = ffcore.create_model(
        "ffnet", input_shape=input_shape, num_classes=num_classes, layers=list(layers), **options
    )
    assert isinstance(model, FFNet)
    return model


def test_factory_builds_layers_of_the_right_widths() -> None:
    model = _small_net(layers=(32, 16, 8), input_shape=(1, 4, 4), num_classes=5)
    assert isinstance(model, FFModel)
    assert model.num_classes == 5
    assert model.input_features == 16
    widths = []
    for layer in model.layers:
        assert isinstance(layer, FFDense)
        widths.append((layer.in_features, layer.out_features))
    assert widths == [(16 + 5, 32), (32, 16), (16, 8)]
    assert model.layer_range == (0, 3)
    assert "ffnet" in ffcore.list_models()


def test_factory_passes_layer_options() -> None:
    model = _small_net(threshold=7.0, maximise=False, goodness="mean-squares", norm="l2", lr=0.02)
    for layer in model.layers:
        assert isinstance(layer, FFDense)
        assert layer.threshold == 7.0
        assert layer.maximise is False
        assert layer.norm == "l2"
        assert layer.lr == pytest.approx(0.02)


@pytest.mark.parametrize("layers", [[], [0], [16, -2], [True], [4.0]])
def test_factory_rejects_bad_layer_lists(layers: list[object]) -> None:
    with pytest.raises(InvalidValueError, match="layers"):
        ffcore.create_model("ffnet", input_shape=(4,), num_classes=3, layers=layers)


def test_parameters_and_state_dict_include_every_layer() -> None:
    model = _small_net(layers=(32, 16, 8))
    parameter_ids = {id(p) for p in model.parameters()}
    state = model.state_dict()
    for index, layer in enumerate(model.layers):
        assert isinstance(layer, FFDense)
        assert id(layer.weight) in parameter_ids
        assert layer.bias is not None and id(layer.bias) in parameter_ids
        assert torch.equal(state[f"layers.{index}.linear.weight"], layer.weight)
        assert torch.equal(state[f"layers.{index}.linear.bias"], layer.bias)
    assert len(parameter_ids) == 2 * 3
    assert len(model.optimizers()) == 3


def test_state_dict_round_trip_keeps_predictions() -> None:
    torch.manual_seed(0)
    source = _small_net()
    source.train_batch(
        Batch(torch.randn(8, 1, 4, 4), torch.arange(8) % 5), ffcore.create_negatives("random")
    )
    torch.manual_seed(1)
    target = _small_net()
    x = torch.randn(6, 1, 4, 4)
    assert not torch.allclose(target.goodness_per_label(x), source.goodness_per_label(x))
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target.goodness_per_label(x), source.goodness_per_label(x))


def test_embed_concatenates_scaled_one_hot() -> None:
    model = _small_net(input_shape=(1, 2, 2), num_classes=3, label_scale=2.5)
    x = torch.arange(8, dtype=torch.float32).reshape(2, 1, 2, 2)
    y = torch.tensor([2, 0])
    embedded = model.embed(x, y)
    expected = torch.tensor(
        [
            [0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 2.5],
            [4.0, 5.0, 6.0, 7.0, 2.5, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(embedded, expected)


def test_embed_rejects_wrong_input_size() -> None:
    model = _small_net(input_shape=(1, 2, 2), num_classes=3)
    with pytest.raises(InvalidValueError) as info:
        model.embed(torch.zeros(2, 5), torch.tensor([0, 1]))
    assert "4" in str(info.value)


@pytest.mark.parametrize(
    ("value", "num_layers", "expected"),
    [
        (None, 3, (0, 3)),
        ("1:", 3, (1, 3)),
        (":2", 3, (0, 2)),
        ("0:1", 2, (0, 1)),
        ("-1:", 4, (3, 4)),
        (" 1 : 3 ", 4, (1, 3)),
        ([0, 1], 2, (0, 1)),
        ((1, 3), 3, (1, 3)),
        ([1, None], 3, (1, 3)),
        ([0, 99], 2, (0, 2)),
    ],
)
def test_parse_layer_range(
    value: Sequence[int] | str | None, num_layers: int, expected: tuple[int, int]
) -> None:
    assert parse_layer_range(value, num_layers) == expected


@pytest.mark.parametrize(
    "value",
    ["1", "a:b", "1:2:3", "", "2:1", "5:", "1:1", [0], [0, 1, 2], ["x", 1], 3, [1, 1]],
)
def test_parse_layer_range_rejects_bad_values(value: object) -> None:
    with pytest.raises(InvalidValueError, match="layer_range"):
        parse_layer_range(value, 3)  # type: ignore[arg-type]


def test_bad_layer_range_through_factory() -> None:
    with pytest.raises(InvalidValueError, match="layer_range"):
        _small_net(layers=(8, 8), layer_range="3:")


def test_goodness_sums_layer_scores_over_layer_range() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 3])
    for layer_range, chosen in ((None, [0, 1, 2]), ("1:", [1, 2]), ([0, 1], [0]), (":-1", [0, 1])):
        torch.manual_seed(0)
        model = _small_net(layers=(16, 12, 8), layer_range=layer_range)
        with torch.no_grad():
            activations = model(x, y)
            expected = torch.zeros(4)
            for index in chosen:
                layer = model.layers[index]
                assert isinstance(layer, FFDense)
                expected = expected + activations[index].square().sum(dim=1)
            torch.testing.assert_close(model.goodness(x, y), expected)


def test_goodness_is_signed_when_minimising() -> None:
    torch.manual_seed(0)
    model = _small_net(layers=(16,), maximise=False)
    x = torch.randn(3, 1, 4, 4)
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        h = model(x, y)[0]
        torch.testing.assert_close(model.goodness(x, y), -h.square().sum(dim=1))


def test_goodness_per_label_shape_and_consistency() -> None:
    torch.manual_seed(0)
    model = _small_net(layers=(32, 16), num_classes=5, layer_range="1:")
    x = torch.randn(7, 1, 4, 4)
    per_label = model.goodness_per_label(x)
    assert per_label.shape == (7, 5)
    assert not per_label.requires_grad
    with torch.no_grad():
        for label in range(5):
            column = model.goodness(x, torch.full((7,), label, dtype=torch.long))
            torch.testing.assert_close(per_label[:, label], column)
    # Different labels really give different goodness (the label is part of the input).
    assert not torch.allclose(per_label[:, 0], per_label[:, 1])


def test_forward_returns_every_layer_activation() -> None:
    model = _small_net(layers=(32, 16, 8))
    activations = model(torch.randn(3, 1, 4, 4), torch.tensor([0, 1, 2]))
    assert [tuple(a.shape) for a in activations] == [(3, 32), (3, 16), (3, 8)]


def test_observer_gets_one_call_per_layer_per_batch() -> None:
    torch.manual_seed(0)
    model = _small_net(layers=(32, 16, 8), num_classes=5)
    recorder = StepRecorder()
    model.observer = recorder
    sampler = ffcore.create_negatives("inverse")
    x = torch.randn(6, 1, 4, 4)
    y = torch.arange(6) % 5
    total = model.train_batch(Batch(x, y), sampler)
    assert [index for index, _, _ in recorder.calls] == [0, 1, 2]
    assert [layer for _, layer, _ in recorder.calls] == list(model.layers)
    widths = (32, 16, 8)
    for (_, _, result), width in zip(recorder.calls, widths, strict=True):
        assert result.h_pos.shape == (6, width)
        assert result.h_neg.shape == (6 * 4, width)  # inverse: num_classes - 1 per sample
        assert result.g_pos.shape == (6,)
    expected_total = sum(result.loss for _, _, result in recorder.calls)
    assert isinstance(expected_total, Tensor)
    torch.testing.assert_close(total, expected_total)
    assert not total.requires_grad
    model.train_batch(Batch(x, y), sampler)
    assert [index for index, _, _ in recorder.calls] == [0, 1, 2, 0, 1, 2]


def test_layers_train_greedily_on_the_output_below() -> None:
    torch.manual_seed(0)
    model = _small_net(layers=(32, 16), num_classes=5)
    recorder = StepRecorder()
    model.observer = recorder
    x = torch.randn(6, 1, 4, 4)
    y = torch.arange(6) % 5
    first = model.layers[0]
    assert isinstance(first, FFDense)
    with torch.no_grad():
        h0_before = first(model.embed(x, y))
    weights_before = [p.detach().clone() for p in model.parameters()]
    model.train_batch(Batch(x, y), ffcore.create_negatives("random"))
    # Layer 0 saw the embedded input; the step result is its pre-update output.
    torch.testing.assert_close(recorder.calls[0][2].h_pos, h0_before)
    # Every parameter moved.
    for before, after in zip(weights_before, model.parameters(), strict=True):
        assert not torch.equal(before, after.detach())


def test_training_separates_true_from_wrong_labels() -> None:
    torch.manual_seed(0)
    model = _small_net(layers=(32,), input_shape=(8,), num_classes=3, lr=0.01)
    x = torch.randn(30, 8)
    y = torch.arange(30) % 3
    sampler = ffcore.create_negatives("random")
    for _ in range(60):
        model.train_batch(Batch(x, y), sampler)
    per_label = model.goodness_per_label(x)
    true = per_label.gather(1, y.unsqueeze(1)).squeeze(1)
    others = per_label.sum(dim=1) - true
    assert (true > others / 2).float().mean() > 0.8


def test_direct_construction_validates() -> None:
    with pytest.raises(InvalidValueError, match="layers"):
        FFNet([], input_features=4, num_classes=2)
    net = FFNet([FFDense(6, 3)], input_features=4, num_classes=2, layer_range=[0, 1])
    assert net.layer_range == (0, 1)
    assert net.extra_summary() == {"layer_range": [0, 1]}


def test_recompute_feeds_post_update_outputs_to_the_next_layer() -> None:
    torch.manual_seed(0)
    fast = ffcore.create_model("ffnet", input_shape=(6,), num_classes=3, layers=[5, 4])
    torch.manual_seed(0)
    seed_style = ffcore.create_model(
        "ffnet", input_shape=(6,), num_classes=3, layers=[5, 4], recompute=True
    )
    assert isinstance(fast, FFNet) and isinstance(seed_style, FFNet)
    seen: dict[str, list[torch.Tensor]] = {"fast": [], "seed": []}
    for name, model in (("fast", fast), ("seed", seed_style)):
        second = model.layers[1]
        second.register_forward_pre_hook(
            lambda module, args, key=name: seen[key].append(args[0].clone())
        )
        torch.manual_seed(1)
        model.train_batch(Batch(torch.randn(4, 6), torch.tensor([0, 1, 2, 0])), RandomWrongLabel())
    first_after = seed_style.layers[0]
    torch.manual_seed(1)
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    negative_y = (y + torch.randint(1, 3, y.shape)) % 3
    with torch.no_grad():
        expected = first_after(seed_style.embed(torch.cat((x, x)), torch.cat((y, negative_y))))
    torch.testing.assert_close(seen["seed"][0], expected)
    assert not torch.allclose(seen["fast"][0], seen["seed"][0])
    with pytest.raises(InvalidValueError, match="recompute"):
        ffcore.create_model("ffnet", input_shape=(6,), num_classes=3, recompute="yes")


class _CopiedImages(NegativeSampler):
    """A sampler's negatives on a copy of the images: the network cannot share them."""

    def __init__(self, sampler: NegativeSampler) -> None:
        self.sampler = sampler

    def __call__(self, batch: Batch, model: FFModel) -> NegativeBatch:
        negative = self.sampler(batch, model)
        return NegativeBatch(x=negative.x.clone(), y=negative.y)


@pytest.mark.parametrize(
    ("recompute", "sampler", "loss"),
    [
        (False, RandomWrongLabel(), None),
        (True, RandomWrongLabel(), None),
        (False, InverseLabels(), "softmax"),  # 4 negatives per image, sample-major
        (True, InverseLabels(), "symba"),
    ],
)
def test_shared_image_step_matches_the_concatenated_step(
    recompute: bool, sampler: NegativeSampler, loss: str | None
) -> None:
    torch.manual_seed(0)
    options: dict[str, Any] = {"recompute": recompute, **({"loss": loss} if loss else {})}
    shared = _small_net(layers=(32, 16), num_classes=5, **options)
    separate = _small_net(layers=(32, 16), num_classes=5, **options)
    separate.load_state_dict(shared.state_dict())
    x = torch.randn(8, 1, 4, 4)
    y = torch.arange(8) % 5
    first = shared.layers[0]
    assert isinstance(first, FFDense)
    tiled_calls: list[int] = []
    tiled = first._tiled_product
    first._tiled_product = lambda *args: tiled_calls.append(1) or tiled(*args)  # type: ignore
    for step in range(3):
        torch.manual_seed(step)
        loss_shared = shared.train_batch(Batch(x, y), sampler)
        torch.manual_seed(step)
        loss_separate = separate.train_batch(Batch(x, y), _CopiedImages(sampler))
        torch.testing.assert_close(loss_shared, loss_separate)
    assert len(tiled_calls) == (6 if recompute else 3)  # the shared path really ran
    for after, reference in zip(shared.parameters(), separate.parameters(), strict=True):
        torch.testing.assert_close(after, reference, rtol=1e-4, atol=1e-5)


def test_copy_major_tiles_negatives_copy_by_copy_and_orders_them_back() -> None:
    y = torch.tensor([0, 1, 2])
    negatives = torch.tensor([10, 11, 20, 21, 30, 31])  # sample-major: 2 per positive
    labels = torch.cat((y, negatives))
    tiled, order = copy_major(labels, num_pos=3)
    # row r of the tiled product pairs image r % 3 with tiled[r]
    assert tiled.tolist() == [0, 1, 2, 10, 20, 30, 11, 21, 31]
    assert order is not None and torch.equal(tiled[order], labels)
    assert [int(r) % 3 for r in order[3:]] == [0, 0, 1, 1, 2, 2]  # each its own image
    one = torch.cat((y, torch.tensor([4, 5, 6])))
    assert copy_major(one, num_pos=3) == (one, None)  # one negative each: already tiled
    with pytest.raises(InvalidValueError, match="negative labels"):
        copy_major(torch.arange(3 + 4), num_pos=3)  # 4 negatives for 3 positives


@pytest.mark.parametrize("model_name", ["ffnet", "ffc"])
def test_one_image_drive_per_batch_for_sampler_readout_and_step(
    model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ffnet_module, "CPU_LABEL_ROWS", 15)  # blocks of 3 images
    torch.manual_seed(0)
    options = {"schedule": "joint"} if model_name == "ffc" else {}
    model = ffcore.create_model(
        model_name, input_shape=(1, 4, 4), num_classes=5, layers=[32, 16], **options
    )
    assert isinstance(model, FFNet)
    first = model.layers[0]
    assert isinstance(first, FFDense)
    drives = record_drives(monkeypatch, first)
    x = torch.randn(8, 1, 4, 4)
    y = torch.arange(8) % 5
    model.on_epoch_start(0, 1)
    model.train_batch(Batch(x, y), ffcore.create_negatives("hard"))
    assert len(drives) == 1  # hard negatives, (FF+C's neutral pass) and the step share it
    model.train_batch(Batch(x, y), ffcore.create_negatives("hard"))
    assert len(drives) == 2  # a new batch after an update: computed afresh
    assert not torch.equal(drives[0], drives[1])
    # Outside training nothing is cached: predictions use the current weights.
    before = model.goodness_per_label(x)
    with torch.no_grad():
        first.weight.add_(0.5)
    assert not torch.allclose(model.goodness_per_label(x), before)


@pytest.mark.parametrize("block_rows", [1, 15, 20, 1000])
def test_label_scores_in_cpu_blocks_match_one_batch(
    block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = _small_net(layers=(32, 16), num_classes=5)
    x = torch.randn(11, 1, 4, 4)
    with torch.no_grad():
        whole = model._label_scores_block(x, None, range(2))[0]
    monkeypatch.setattr(ffnet_module, "CPU_LABEL_ROWS", block_rows)
    blocks = record_rows(monkeypatch, model, "_label_scores_block")
    per_layer = model.layer_goodness_per_label(x)
    expected_blocks = {1: [1] * 11, 15: [3, 3, 3, 2], 20: [4, 4, 3], 1000: [11]}[block_rows]
    assert blocks == expected_blocks  # at least one image per block, at most the budget
    torch.testing.assert_close(per_layer, torch.stack(whole))
    torch.testing.assert_close(model.goodness_per_label(x), whole[0] + whole[1])
