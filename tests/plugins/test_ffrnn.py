"""FFRecurrentLayer and FFRNN: the update rule, frames, label scoring, training and I/O."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import Tensor

import ffcore
import ffplugins.ffrnn as ffrnn_module
from ffcore import plugin_manager
from ffcore.checkpoint import load_checkpoint, save_checkpoint
from ffcore.cli.main import cli
from ffcore.config import TrainConfig
from ffcore.errors import DivergenceError, FFLibError, InvalidValueError
from ffcore.interfaces import Batch, FFModel, LabelScorer, LayerStepResult
from ffcore.precision import autocast
from ffcore.training import TrainingRun, build_run, train
from ffplugins.ffrnn import FFRNN, parse_test_frames
from ffplugins.recurrent import FFRecurrentLayer
from tests.plugins.helpers import StepRecorder, record_rows


def _set_weights(layer: FFRecurrentLayer, fw: list[list[float]], bw: list[list[float]]) -> None:
    with torch.no_grad():
        layer.fw.copy_(torch.tensor(fw))
        layer.bw.copy_(torch.tensor(bw))


def _small_rnn(
    layers: Sequence[int] = (12, 10),
    input_shape: tuple[int, ...] = (1, 3, 3),
    num_classes: int = 4,
    **options: Any,
) -> FFRNN:
    options.setdefault("frames", 4)
    options.setdefault("test_frames", "2:4")
    model = ffcore.create_model(
        "ffrnn", input_shape=input_shape, num_classes=num_classes, layers=list(layers), **options
    )
    assert isinstance(model, FFRNN)
    return model


def _layers(model: FFRNN) -> list[FFRecurrentLayer]:
    found = []
    for layer in model.layers:
        assert isinstance(layer, FFRecurrentLayer)
        found.append(layer)
    return found


# --- FFRecurrentLayer -----------------------------------------------------------------


def test_step_matches_hand_computation_l2() -> None:
    layer = FFRecurrentLayer(2, 2, 2, norm="l2", beta=0.5, activation="relu")
    _set_weights(layer, fw=[[1.0, 2.0], [0.0, -1.0]], bw=[[0.5, 0.0], [1.0, 1.0]])
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.1, -0.2]))
    below = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # row 2: a zero row stays zero
    above = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    previous = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    # Row 1: norm(below) = [0.6, 0.8], norm(above) = [0, 1]
    #   W_fw·[0.6, 0.8] = [2.2, -0.8]; W_bw·[0, 1] = [0, 1]; + b = [2.3, 0.0]; relu = [2.3, 0]
    #   0.5 · [2.3, 0] + 0.5 · [1, -2] = [1.65, -1.0]
    # Row 2: only the bias drives: relu([0.1, -0.2]) = [0.1, 0]; times 0.5 = [0.05, 0]
    expected = torch.tensor([[1.65, -1.0], [0.05, 0.0]])
    torch.testing.assert_close(layer.step(below, previous, above), expected)


def test_step_matches_hand_computation_rms_beta_one() -> None:
    layer = FFRecurrentLayer(2, 2, 2, norm="rms", beta=1.0, activation="identity")
    _set_weights(layer, fw=[[1.0, 2.0], [0.0, -1.0]], bw=[[0.5, 0.0], [1.0, 1.0]])
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.1, -0.2]))
    root2 = math.sqrt(2.0)
    # rms(below) = 5/√2 -> [0.6√2, 0.8√2]; rms(above) = √2 -> [0, √2]; beta = 1 drops previous
    expected = torch.tensor([[2.2 * root2 + 0.1, -0.8 * root2 + root2 - 0.2]])
    out = layer.step(
        torch.tensor([[3.0, 4.0]]), torch.tensor([[100.0, 100.0]]), torch.tensor([[0.0, 2.0]])
    )
    torch.testing.assert_close(out, expected)


def test_step_shapes_and_detached_inputs() -> None:
    torch.manual_seed(0)
    layer = FFRecurrentLayer(6, 5, 3)
    below = torch.randn(4, 6, requires_grad=True)
    previous = torch.randn(4, 5, requires_grad=True)
    above = torch.randn(4, 3, requires_grad=True)
    h = layer.step(below, previous, above)
    assert h.shape == (4, 5)
    torch.autograd.backward(h.square().sum())
    assert below.grad is None and previous.grad is None and above.grad is None
    for parameter in (layer.fw, layer.bw, layer.bias):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_none_means_zero_state_and_forward_is_bottom_up() -> None:
    torch.manual_seed(0)
    layer = FFRecurrentLayer(6, 5, 3, beta=0.6)
    x = torch.randn(4, 6)
    zeros_rc, zeros_above = torch.zeros(4, 5), torch.zeros(4, 3)
    with torch.no_grad():
        full = layer.step(x, zeros_rc, zeros_above)
        torch.testing.assert_close(layer.step(x, None, None), full)
        torch.testing.assert_close(layer(x), full)
        rms = x.norm(dim=1, keepdim=True) / math.sqrt(6)
        expected = 0.6 * torch.relu((x / rms) @ layer.fw.T + layer.bias)
        torch.testing.assert_close(layer(x), expected)


def test_step_rejects_wrong_shapes() -> None:
    layer = FFRecurrentLayer(6, 5, 3)
    with pytest.raises(InvalidValueError, match="below shape"):
        layer.step(torch.zeros(2, 7), None, None)
    with pytest.raises(InvalidValueError, match="above shape"):
        layer.step(torch.zeros(2, 6), None, torch.zeros(2, 4))
    with pytest.raises(InvalidValueError, match="above shape"):
        layer.step(torch.zeros(2, 6), None, torch.zeros(1, 3))
    with pytest.raises(InvalidValueError, match="previous shape"):
        layer.step(torch.zeros(2, 6), torch.zeros(2, 4), None)


def test_train_frame_uses_one_matmul_per_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    layer = FFRecurrentLayer(6, 5, 3, lr=0.01)
    below, previous, above = torch.randn(10, 6), torch.rand(10, 5), torch.randn(10, 3)
    with torch.no_grad():
        expected = layer.step(below, previous, above)
    before = [p.detach().clone() for p in layer.parameters()]
    rows: list[int] = []
    real_linear = F.linear

    def spy(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        rows.append(x.shape[0])
        return real_linear(x, weight, bias)

    monkeypatch.setattr(F, "linear", spy)
    result = layer.train_frame(below, previous, above, num_pos=4)
    monkeypatch.undo()
    assert rows == [10, 10]  # forward and backward weights, positives and negatives together
    assert isinstance(result, LayerStepResult)
    torch.testing.assert_close(result.h, expected)  # computed before the update
    torch.testing.assert_close(result.h_pos, expected[:4])
    torch.testing.assert_close(result.h_neg, expected[4:])
    torch.testing.assert_close(result.g_pos, expected[:4].square().sum(dim=1))
    assert result.g_neg.shape == (6,)
    assert not result.loss.requires_grad and not result.h.requires_grad
    for old, new in zip(before, layer.parameters(), strict=True):
        assert not torch.equal(old, new.detach())


def test_train_frame_separates_positive_from_negative() -> None:
    torch.manual_seed(0)
    layer = FFRecurrentLayer(8, 16, 4, lr=0.01)
    pos_below, neg_below = torch.randn(20, 8) + 1.0, torch.randn(20, 8) - 1.0
    below = torch.cat((pos_below, neg_below))
    above = torch.randn(40, 4)
    previous = torch.zeros(40, 16)
    first = layer.train_frame(below, previous, above, num_pos=20)
    for _ in range(100):
        last = layer.train_frame(below, previous, above, num_pos=20)
    assert last.loss < first.loss
    assert last.g_pos.mean() > layer.threshold > last.g_neg.mean()


def test_train_frame_refuses_a_non_finite_loss_and_tracks_silence() -> None:
    layer = FFRecurrentLayer(6, 5, 3)
    below = torch.randn(4, 6)
    layer.train_frame(below, None, None, 2)
    assert layer.alive is not None and bool(layer.alive)
    with torch.no_grad():
        layer.bias.fill_(-1e3)  # every unit silent
    layer.train_frame(below, None, None, 2)
    assert layer.alive is not None and not bool(layer.alive)
    before = [p.detach().clone() for p in layer.parameters()]
    with torch.no_grad():
        layer.bias[0] = float("nan")
    with pytest.raises(DivergenceError):
        layer.train_frame(below, None, None, 2)
    after = [p.detach() for p in layer.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before[:2], after[:2], strict=True))


def test_train_frame_needs_positives_and_negatives() -> None:
    layer = FFRecurrentLayer(6, 5, 3)
    for num_pos in (0, 4, -1):
        with pytest.raises(InvalidValueError, match="num_pos"):
            layer.train_frame(torch.randn(4, 6), None, None, num_pos)


def test_inherited_train_step_trains_bottom_up() -> None:
    torch.manual_seed(0)
    layer = FFRecurrentLayer(6, 5, 3)
    x_pos, x_neg = torch.randn(4, 6), torch.randn(8, 6)
    with torch.no_grad():
        expected = layer(x_pos)
    result = layer.train_step(x_pos, x_neg)
    torch.testing.assert_close(result.h_pos, expected)
    assert result.h_neg.shape == (8, 5)
    assert not torch.equal(layer(x_pos).detach(), expected)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"beta": True}, "beta"),
        ({"norm": "l1"}, "norm"),
        ({"activation": "swish"}, "activation"),
        ({"rc_features": 0}, "rc_features"),
        ({"bw_features": 2.0}, "bw_features"),
        ({"lr": -1.0}, "lr"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": -2.0}, "threshold"),
    ],
)
def test_layer_rejects_bad_options(options: dict[str, Any], field: str) -> None:
    kwargs: dict[str, Any] = {"fw_features": 4, "rc_features": 3, "bw_features": 2, **options}
    with pytest.raises(InvalidValueError) as info:
        ffcore.create_layer("ffrecurrent", **kwargs)
    assert info.value.field == field


def test_layer_registered_with_alias_and_description() -> None:
    layer = ffcore.create_layer(
        "FFRecurrentLayer", fw_features=4, rc_features=3, bw_features=2, threshold=None
    )
    assert isinstance(layer, FFRecurrentLayer)
    assert layer.threshold == 3.0  # sum-squares: the width
    spec = ffcore.get_component("layer", "ffrecurrent")
    assert spec.aliases == ("ffrecurrentlayer",)
    assert "beta" in spec.description
    assert "ffrecurrent" in ffcore.list_layers()


# --- FFRNN: structure -------------------------------------------------------------------


def test_factory_builds_chained_layers() -> None:
    model = _small_rnn(layers=(12, 10, 8), input_shape=(1, 3, 3), num_classes=4, beta=0.5)
    assert isinstance(model, FFModel) and isinstance(model, LabelScorer)
    shapes = [(la.fw_features, la.rc_features, la.bw_features) for la in _layers(model)]
    assert shapes == [(9, 12, 10), (12, 10, 8), (10, 8, 4)]
    assert all(layer.beta == 0.5 for layer in _layers(model))
    assert model.default_probe == "tryall"
    assert model.extra_summary() == {"frames": 4, "test_frames": [2, 4], "beta": 0.5}
    assert "ffrnn" in ffcore.list_models()


def test_parameters_state_dict_and_optimizers_see_every_layer() -> None:
    model = _small_rnn(layers=(12, 10, 8))
    expected_count = sum(
        la.rc_features * la.fw_features + la.rc_features * la.bw_features + la.rc_features
        for la in _layers(model)
    )
    assert expected_count == 12 * 9 + 12 * 10 + 12 + 10 * 12 + 10 * 8 + 10 + 8 * 10 + 8 * 4 + 8
    assert sum(p.numel() for p in model.parameters()) == expected_count
    assert len(list(model.parameters())) == 3 * 3
    state = model.state_dict()
    assert set(state) == {
        f"layers.{index}.{name}" for index in range(3) for name in ("fw", "bw", "bias")
    }
    for index, layer in enumerate(_layers(model)):
        assert torch.equal(state[f"layers.{index}.fw"], layer.fw)
    assert len(model.optimizers()) == 3


def test_to_moves_every_layer() -> None:
    model = _small_rnn(layers=(12, 10))
    model.to(torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    scores = model.goodness_per_label(torch.randn(3, 1, 3, 3, dtype=torch.float64))
    assert scores.dtype == torch.float64
    model.to("cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    model.to("meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_direct_construction_checks_the_chain() -> None:
    good = [FFRecurrentLayer(9, 6, 5), FFRecurrentLayer(6, 5, 4)]
    model = FFRNN(good, input_features=9, num_classes=4, frames=2, test_frames=[1, 2])
    assert model.test_frames == (1, 2)
    with pytest.raises(InvalidValueError) as info:
        FFRNN([FFRecurrentLayer(9, 6, 5), FFRecurrentLayer(6, 5, 3)], 9, 4)
    assert info.value.field == "layers"
    with pytest.raises(InvalidValueError) as info:
        FFRNN([], 9, 4)
    assert info.value.field == "layers"


# --- FFRNN: options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"frames": 0}, "frames"),
        ({"frames": -3}, "frames"),
        ({"frames": 2.0}, "frames"),
        ({"frames": True}, "frames"),
        ({"frames": 4, "test_frames": "0:3"}, "test_frames"),
        ({"frames": 4, "test_frames": "3:2"}, "test_frames"),
        ({"frames": 4, "test_frames": "2:5"}, "test_frames"),
        ({"frames": 4, "test_frames": "a:b"}, "test_frames"),
        ({"frames": 4, "test_frames": "3"}, "test_frames"),
        ({"frames": 4, "test_frames": [1]}, "test_frames"),
        ({"frames": 4, "test_frames": [1, 2, 3]}, "test_frames"),
        ({"frames": 4, "test_frames": [1.0, 2]}, "test_frames"),
        ({"frames": 5, "test_frames": "3:8"}, "test_frames"),
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.01}, "beta"),
        ({"layers": []}, "layers"),
        ({"layers": [8, 0]}, "layers"),
    ],
)
def test_factory_rejects_bad_options(options: dict[str, Any], field: str) -> None:
    kwargs: dict[str, Any] = {"layers": [8, 6], **options}
    with pytest.raises(InvalidValueError) as info:
        ffcore.create_model("ffrnn", input_shape=(4,), num_classes=3, **kwargs)
    assert info.value.field == field


def test_factory_rejects_a_non_recurrent_layer() -> None:
    with pytest.raises(FFLibError):
        ffcore.create_model("ffrnn", input_shape=(4,), num_classes=3, layer="ffdense")


@pytest.mark.parametrize(
    ("value", "frames", "expected"),
    [("3:8", 10, (3, 8)), (" 1 : 1 ", 1, (1, 1)), ([2, 4], 4, (2, 4)), ((1, 10), 10, (1, 10))],
)
def test_parse_test_frames(
    value: Sequence[int] | str, frames: int, expected: tuple[int, int]
) -> None:
    assert parse_test_frames(value, frames) == expected


def test_default_options_follow_the_seed() -> None:
    model = ffcore.create_model("ffrnn", input_shape=(4,), num_classes=3, layers=[5])
    assert isinstance(model, FFRNN)
    assert (model.frames, model.test_frames) == (10, (3, 8))
    assert _layers(model)[0].beta == 0.7


# --- FFRNN: prediction ------------------------------------------------------------------


def _manual_step(layer: FFRecurrentLayer, below: Tensor, previous: Tensor, above: Tensor) -> Tensor:
    """The update rule written out independently (rms norm, relu)."""

    def rms_normalise(v: Tensor) -> Tensor:
        rms = torch.linalg.vector_norm(v, dim=1, keepdim=True) / math.sqrt(v.shape[1])
        normalised: Tensor = v / (rms + 1e-8)
        return normalised

    drive = rms_normalise(below) @ layer.fw.T + rms_normalise(above) @ layer.bw.T + layer.bias
    return layer.beta * torch.relu(drive) + (1 - layer.beta) * previous


def _manual_goodness(model: FFRNN, x: Tensor, y: Tensor, low: int, high: int) -> Tensor:
    """Zero states, one bottom-up pass, frames 1..high; mean sum-squares over low..high."""
    layers = _layers(model)
    bottom = x.reshape(x.shape[0], -1)
    top = F.one_hot(y, model.num_classes).float()
    states = [torch.zeros(x.shape[0], layer.rc_features) for layer in layers]
    for i, layer in enumerate(layers):
        above = top if i == len(layers) - 1 else states[i + 1]
        states[i] = _manual_step(layer, bottom if i == 0 else states[i - 1], states[i], above)
    per_frame: list[Tensor] = []
    for _ in range(high):
        new_states = []
        for i, layer in enumerate(layers):
            below = bottom if i == 0 else states[i - 1]
            above = top if i == len(layers) - 1 else states[i + 1]
            new_states.append(_manual_step(layer, below, states[i], above))
        states = new_states
        per_frame.append(sum((s.square().sum(dim=1) for s in states), torch.zeros(x.shape[0])))
    return torch.stack(per_frame[low - 1 : high]).mean(dim=0)


@pytest.mark.parametrize(
    ("test_frames", "low", "high"), [("2:4", 2, 4), ([1, 1], 1, 1), ("3:5", 3, 5)]
)
def test_goodness_averages_exactly_the_test_frames(
    test_frames: Sequence[int] | str, low: int, high: int
) -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10, 8), frames=5, test_frames=test_frames)
    x = torch.randn(6, 1, 3, 3)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        expected = _manual_goodness(model, x, y, low, high)
        other = _manual_goodness(model, x, y, 1, 5)
    assert not torch.allclose(expected, other)  # the frame choice matters
    torch.testing.assert_close(model.goodness(x, y), expected)


def test_goodness_scores_each_layer_once_per_test_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10), frames=6, test_frames="2:5")
    calls: list[int] = []
    for index, layer in enumerate(_layers(model)):
        real_score = layer.score

        def spy(
            h: Tensor, index: int = index, real: Callable[[Tensor], Tensor] = real_score
        ) -> Tensor:
            calls.append(index)
            return real(h)

        monkeypatch.setattr(layer, "score", spy)
    model.goodness_per_label(torch.randn(3, 1, 3, 3))
    assert calls == [0, 1] * 4  # frames 2, 3, 4 and 5, every layer


def test_goodness_is_signed_when_minimising() -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12,), maximise=False, frames=3, test_frames="1:3")
    x, y = torch.randn(3, 1, 3, 3), torch.tensor([0, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(model.goodness(x, y), -_manual_goodness(model, x, y, 1, 3))


def test_predictions_are_deterministic() -> None:
    torch.manual_seed(0)
    model = _small_rnn()
    x = torch.randn(5, 1, 3, 3)
    first = model.goodness_per_label(x)
    torch.manual_seed(123)  # no hidden random draws: the RNG state does not matter
    second = model.goodness_per_label(x)
    assert torch.equal(first, second)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert torch.equal(model.goodness(x, y), model.goodness(x, y))
    # Rows do not interact: a sub-batch scores the same.
    torch.testing.assert_close(model.goodness_per_label(x[:2]), first[:2])


def test_goodness_per_label_matches_goodness_for_each_label() -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10), num_classes=4)
    x = torch.randn(7, 1, 3, 3)
    per_label = model.goodness_per_label(x)
    assert per_label.shape == (7, 4)
    assert not per_label.requires_grad
    for label in range(4):
        column = model.goodness(x, torch.full((7,), label, dtype=torch.long))
        torch.testing.assert_close(per_label[:, label], column)
    assert not torch.allclose(per_label[:, 0], per_label[:, 1])  # the label reaches the net


@pytest.mark.parametrize("test_frames", ["1:3", "3:3"])
def test_goodness_per_label_shares_label_free_work_and_matches_each_label(
    test_frames: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label enters at the top and moves down a layer per frame: until it arrives,
    a layer's state (and the drive it gives the layer above) is computed once per image."""
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10, 8), num_classes=4, frames=3, test_frames=test_frames)
    x = torch.randn(3, 1, 3, 3)
    rows = {
        index: record_rows(monkeypatch, layer, "bottom_up")
        for index, layer in enumerate(_layers(model))
    }
    per_label = model.goodness_per_label(x)
    # the image's drive once; layer 1 sees label-free states below it up to frame 2, layer
    # 2 up to frame 1 (bottom-up pass, then frames 1..3)
    assert rows == {0: [3], 1: [3, 3, 3, 12], 2: [3, 3, 12, 12]}
    for label in range(4):
        column = model.goodness(x, torch.full((3,), label, dtype=torch.long))
        torch.testing.assert_close(per_label[:, label], column)


def test_forward_returns_every_state_at_the_last_test_frame() -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10, 8), frames=4, test_frames="1:3")
    x, y = torch.randn(3, 1, 3, 3), torch.tensor([0, 1, 2])
    states = model(x, y)
    assert [tuple(s.shape) for s in states] == [(3, 12), (3, 10), (3, 8)]
    with torch.no_grad():
        last_frame = sum(s.square().sum(dim=1) for s in states)
        assert isinstance(last_frame, Tensor)
        torch.testing.assert_close(last_frame, _manual_goodness(model, x, y, 3, 3))


# --- FFRNN: training --------------------------------------------------------------------


def test_train_batch_steps_every_layer_every_frame() -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10), num_classes=4, frames=3, test_frames="1:3")
    recorder = StepRecorder()
    model.observer = recorder
    x, y = torch.randn(5, 1, 3, 3), torch.arange(5) % 4
    before = [p.detach().clone() for p in model.parameters()]
    total = model.train_batch(Batch(x, y), ffcore.create_negatives("inverse"))
    assert [index for index, _, _ in recorder.calls] == [0, 1] * 3
    layers = list(model.layers)
    assert [layer for _, layer, _ in recorder.calls] == layers * 3
    for index, _, result in recorder.calls:
        width = (12, 10)[index]
        assert result.h_pos.shape == (5, width)
        assert result.h_neg.shape == (5 * 3, width)  # inverse: num_classes - 1 per sample
        assert result.g_pos.shape == (5,) and result.g_neg.shape == (15,)
    expected_total = sum(result.loss for _, _, result in recorder.calls)
    assert isinstance(expected_total, Tensor)
    torch.testing.assert_close(total, expected_total)
    assert total.dim() == 0 and not total.requires_grad
    for old, new in zip(before, model.parameters(), strict=True):
        assert not torch.equal(old, new.detach())


def test_training_frames_are_synchronous_from_the_bottom_up_start() -> None:
    """With a vanishing learning rate, frame ``f``'s states are the prediction's states."""
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10, 8), frames=3, test_frames="1:3", lr=1e-12)
    recorder = StepRecorder()
    model.observer = recorder
    x, y = torch.randn(4, 1, 3, 3), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        bottom = model.flatten(x)
        top = model.label_code(y, bottom.dtype)
        states = model.initial_states(bottom, top)
        expected = []
        for _ in range(3):
            states = model.frame(bottom, top, states)
            expected.extend(states)
    model.train_batch(Batch(x, y), ffcore.create_negatives("random"))
    assert len(recorder.calls) == len(expected) == 9
    for (_, _, result), state in zip(recorder.calls, expected, strict=True):
        torch.testing.assert_close(result.h_pos, state, rtol=1e-5, atol=1e-5)


def test_hard_negatives_use_goodness_per_label() -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12,), num_classes=4, frames=2, test_frames="1:2")
    x, y = torch.randn(6, 1, 3, 3), torch.arange(6) % 4
    sampler = ffcore.create_negatives("hard")
    negative = sampler(Batch(x, y), model)
    assert not bool((negative.y == y).any())
    scores = model.goodness_per_label(x).scatter(1, y.unsqueeze(1), float("-inf"))
    assert torch.equal(negative.y, scores.argmax(dim=1))
    assert model.train_batch(Batch(x, y), sampler).isfinite()


def test_ffrnn_learns_digits_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Built-in plugins only: observers installed from elsewhere would change the timing.
    monkeypatch.setenv(plugin_manager.BUILTIN_ONLY_ENV, "1")
    plugin_manager.reset_plugins()
    # One intra-op thread: these matrices are small, and on a busy 2-core machine two OpenMP
    # threads spin against other processes (measured: 1.5 s on one thread; up to 48 s on
    # two while another process kept a core busy).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics, run = _train_digits()
    finally:
        torch.set_num_threads(threads)
    assert metrics["test_acc"] > 0.6 > 5 / run.data.num_classes
    assert run.history[-1]["loss"] < run.history[0]["loss"]


def _train_digits() -> tuple[dict[str, float], TrainingRun]:
    config = TrainConfig(
        model="ffrnn",
        dataset="digits",
        layers=[128, 128],
        epochs=8,
        lr=0.01,
        device="cpu",
        model_options={"frames": 4, "test_frames": "2:4"},
    )
    run = build_run(config)
    return train(run), run


# --- FFRNN: CLI and checkpoints ---------------------------------------------------------


def test_ff_train_cli_runs_ffrnn(tmp_path: Path) -> None:
    out = tmp_path / "rnn.pt"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--model",
            "ffrnn",
            "--layers",
            "32",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "-O",
            "model.frames=3",
            "-O",
            "model.test_frames='1:3'",
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    loaded = load_checkpoint(out)
    assert isinstance(loaded.model, FFRNN)
    assert (loaded.model.frames, loaded.model.test_frames) == (3, (1, 3))
    assert [la.rc_features for la in _layers(loaded.model)] == [32]


def test_checkpoint_round_trip_keeps_scores(tmp_path: Path) -> None:
    torch.manual_seed(0)
    options: dict[str, Any] = {"layers": [12, 10], "frames": 3, "test_frames": [2, 3]}
    model = ffcore.create_model("ffrnn", input_shape=(1, 3, 3), num_classes=4, **options)
    assert isinstance(model, FFRNN)
    x, y = torch.randn(8, 1, 3, 3), torch.arange(8) % 4
    model.train_batch(Batch(x, y), ffcore.create_negatives("random"))
    path = save_checkpoint(
        tmp_path / "rnn.pt",
        model,
        model_name="ffrnn",
        model_options=options,
        input_shape=(1, 3, 3),
        num_classes=4,
    )
    torch.manual_seed(99)
    loaded = load_checkpoint(path).model
    assert isinstance(loaded, FFRNN)
    assert torch.equal(loaded.goodness_per_label(x), model.goodness_per_label(x))
    assert loaded.test_frames == (2, 3)


def test_bf16_products_leave_states_and_scores_in_fp32_close_to_fp32() -> None:
    """Mixed precision: only the products run in bfloat16; the states that feed later
    frames, and the label scores, stay float32 and close to the float32 run's."""
    torch.manual_seed(0)
    model = _small_rnn(layers=(32, 24), num_classes=4)
    x = torch.randn(6, 1, 3, 3)
    with torch.no_grad():
        expected_states = model(x, torch.arange(6) % 4)
        expected_scores = model.goodness_per_label(x)
        with autocast("cpu", "bf16"):
            states = model(x, torch.arange(6) % 4)
            scores = model.goodness_per_label(x)
    assert [s.dtype for s in states] == [torch.float32, torch.float32]
    assert scores.dtype == torch.float32
    assert not torch.equal(scores, expected_scores)  # the products did run in bfloat16
    for state, expected in zip(states, expected_states, strict=True):
        torch.testing.assert_close(state, expected, rtol=0.03, atol=0.03)
    torch.testing.assert_close(scores, expected_scores, rtol=0.01, atol=0.05)


@pytest.mark.parametrize("block_rows", [1, 8, 1000])
def test_goodness_per_label_in_cpu_blocks_matches_one_batch(
    block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = _small_rnn(layers=(12, 10), num_classes=4)
    x = torch.randn(7, 1, 3, 3)
    whole = model.goodness_per_label(x)
    monkeypatch.setattr(ffrnn_module, "CPU_LABEL_ROWS", block_rows)
    blocks = record_rows(monkeypatch, model, "_goodness_per_label")
    torch.testing.assert_close(model.goodness_per_label(x), whole)
    assert blocks == {1: [1] * 7, 8: [2, 2, 2, 1], 1000: [7]}[block_rows]
