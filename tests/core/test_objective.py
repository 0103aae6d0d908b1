"""Objective: the one value every FF layer builds its goodness, loss, threshold and
optimizer from, and FFLayer.set_objective / observe, which use it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.errors import InvalidValueError, UnknownComponentError
from ffcore.interfaces import FFLayer, Objective
from ffplugins.dense import FFDense
from ffplugins.goodness import MeanSquares, SumSquares
from ffplugins.losses import SymBa
from ffplugins.recurrent import FFRecurrentLayer
from tests.plugins.helpers import StepRecorder


def test_defaults_are_the_documented_ones() -> None:
    assert dataclasses.asdict(Objective()) == {
        "goodness": "sum-squares",
        "loss": "softplus-threshold",
        "threshold": None,
        "maximise": True,
        "optimizer": "adam",
        "lr": 3e-3,
    }


def test_of_replaces_fields_and_refuses_unknown_ones() -> None:
    base = Objective(goodness="mean-squares", lr=0.01)
    assert Objective.of(None) == Objective()
    assert Objective.of(base) is base
    assert Objective.of(base, lr=0.02) == Objective(goodness="mean-squares", lr=0.02)
    with pytest.raises(InvalidValueError, match="'beta'"):
        Objective.of(base, beta=0.5)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maximise", 1),
        ("maximise", "no"),
        ("lr", 0.0),
        ("lr", True),
        ("goodness", 3),
        ("loss", None),
    ],
)
def test_bad_fields_name_themselves(field: str, value: object) -> None:
    with pytest.raises(InvalidValueError, match=field):
        Objective(**{field: value})  # type: ignore[arg-type]


def test_a_layer_builds_everything_from_the_objective() -> None:
    layer = FFDense(6, 5, objective=Objective(goodness="mean-squares", loss="symba", lr=0.02))
    assert isinstance(layer.goodness_fn, MeanSquares)
    assert isinstance(layer.loss_fn, SymBa)
    assert layer.threshold == MeanSquares().default_threshold(5)
    assert layer.lr == pytest.approx(0.02)
    assert isinstance(layer.optimizer, torch.optim.Adam)
    assert layer.objective == Objective(goodness="mean-squares", loss="symba", lr=0.02)


def test_fields_given_one_by_one_override_the_objective() -> None:
    base = Objective(threshold=3.0, maximise=False, optimizer="sgd")
    layer = FFRecurrentLayer(4, 6, 2, objective=base, threshold=2.0, lr=0.5)
    assert (layer.threshold, layer.maximise, layer.lr) == (2.0, False, 0.5)
    assert isinstance(layer.optimizer, torch.optim.SGD)
    same = FFDense(6, 5, goodness="mean-squares", lr=0.01)
    assert same.objective == Objective(goodness="mean-squares", lr=0.01)


def test_objects_stand_for_names() -> None:
    goodness = SumSquares()
    layer = FFDense(6, 5, goodness=goodness)
    assert layer.goodness_fn is goodness
    assert layer.threshold == 5.0  # the goodness' own default for five units


def test_the_threshold_is_checked_against_the_goodness() -> None:
    with pytest.raises(InvalidValueError, match="non-negative number for this goodness"):
        FFDense(6, 5, threshold=-1.0)
    with pytest.raises(InvalidValueError, match="threshold"):
        FFDense(6, 5, threshold=float("nan"))
    with pytest.raises(UnknownComponentError, match="goodness 'no-such-goodness'"):
        FFDense(6, 5, goodness="no-such-goodness")


class _Plain(FFLayer):
    """``h = x · w`` for a scalar ``w``: just enough of a layer to set an objective on."""

    def __init__(self, objective: Objective, *, scale: float = 1.0) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.set_objective(
            objective, 4, goodness=ffcore.create_goodness("mean-squares"), threshold_scale=scale
        )

    def forward(self, x: Tensor) -> Tensor:
        return x.detach() * self.w


def test_set_objective_takes_a_replacement_goodness_and_scales_its_threshold() -> None:
    layer = _Plain(Objective(goodness="sum-squares"), scale=9.0)
    assert isinstance(layer.goodness_fn, MeanSquares)  # the replacement, not the named one
    assert layer.threshold == 9.0 * MeanSquares().default_threshold(4)
    assert layer.optimizer.param_groups[0]["params"] == [layer.w]
    assert _Plain(Objective(threshold=2.5), scale=9.0).threshold == 2.5  # given: as it is


def test_update_reports_each_step_to_the_observer() -> None:
    layer = FFDense(6, 5)
    x_pos, x_neg = torch.randn(3, 6), torch.randn(3, 6)
    layer.train_step(x_pos, x_neg)  # no observer: nothing to report to
    recorder = StepRecorder()
    layer.observe(recorder, 7)
    result = layer.train_step(x_pos, x_neg)
    frame = FFRecurrentLayer(6, 5, 2)
    frame.observe(recorder, 2)
    frame_result = frame.train_frame(torch.randn(4, 6), None, torch.randn(4, 2), 2)
    assert recorder.calls == [(7, layer, result), (2, frame, frame_result)]
    layer.observe(None, 7)
    layer.train_step(x_pos, x_neg)
    assert len(recorder.calls) == 2
