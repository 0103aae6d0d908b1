"""The layer kit (ffcore.layers) and the option checks it re-exports (ffcore.validate)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.components import Registry
from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer, Objective, ObjectiveOptions
from ffcore.layers import (
    boolean,
    build_layer,
    calls_hooks,
    choice,
    int_list,
    integer,
    layer_factory,
    non_negative_int,
    number,
    parse_layer_range,
    positive_int,
    positive_number,
)
from ffplugins.dense import FFDense, ffdense


def _message(check: Callable[[], object]) -> str:
    with pytest.raises(InvalidValueError) as caught:
        check()
    return str(caught.value)


@pytest.mark.parametrize("value", [0, -3, 1.0, "2", True, None])
def test_positive_int_names_field_value_and_expectation(value: object) -> None:
    message = _message(lambda: positive_int("frames", value))
    assert message == f"invalid frames: {value!r} (expected a positive integer)"


def test_integer_checks_pass_values_through() -> None:
    assert positive_int("frames", 3) == 3
    assert non_negative_int("ff_epochs", 0) == 0
    assert integer("samples", 10, minimum=10) == 10
    assert "an integer >= 10" in _message(lambda: integer("samples", 9, minimum=10))
    assert "a non-negative integer" in _message(lambda: non_negative_int("ff_epochs", -1))
    assert "my words" in _message(lambda: positive_int("x", 0, "my words"))


@pytest.mark.parametrize("value", [[], [0], [3, -1], [True], [2.0], "12", 5, None])
def test_int_list_refuses_what_is_not_a_list_of_positive_integers(value: object) -> None:
    message = _message(lambda: int_list("layers", value))
    assert message.startswith("invalid layers: ")
    assert "a non-empty list of positive integers" in message


def test_int_list_accepts_sequences_and_may_allow_empty() -> None:
    assert int_list("layers", (4, 2)) == [4, 2]
    assert int_list("dense", [], allow_empty=True) == []
    assert "a list of integers >= 0" in _message(
        lambda: int_list("sizes", [-1], minimum=0, allow_empty=True)
    )


def test_choice_lists_the_choices_in_order() -> None:
    assert choice("norm", "rms", ("l2", "rms", "none")) == "rms"
    message = _message(lambda: choice("norm", "L2", ("l2", "rms", "none")))
    assert message == "invalid norm: 'L2' (expected one of l2, rms, none)"
    assert "one of a, b" in _message(lambda: choice("kind", 3, {"a": 1, "b": 2}))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1", True, None])
def test_number_is_finite_and_not_a_bool(value: object) -> None:
    assert "a finite number" in _message(lambda: number("scale", value))


def test_number_ranges_and_their_messages() -> None:
    assert number("beta", 1, low=0, low_open=True, high=1) == 1.0
    assert isinstance(number("beta", 1, low=0, high=1), float)
    assert "a number in (0, 1]" in _message(lambda: number("beta", 0, low=0, low_open=True, high=1))
    assert "a number in [0, 1)" in _message(lambda: number("m", 1, low=0, high=1, high_open=True))
    assert "a weight >= 0" in _message(lambda: number("w", -1, low=0, expected="a weight >= 0"))
    assert positive_number("lr", 0.5) == 0.5
    assert "a positive finite number" in _message(lambda: positive_number("lr", 0.0))


@pytest.mark.parametrize("value", [0, 1, "true", None])
def test_boolean_takes_only_true_or_false(value: object) -> None:
    assert boolean("recompute", False) is False
    assert _message(lambda: boolean("recompute", value)).endswith("(expected true or false)")


def test_parse_layer_range_names_the_whole_value() -> None:
    assert parse_layer_range((1, None), 3) == (1, 3)
    message = _message(lambda: parse_layer_range([0, "x"], 3))  # type: ignore[list-item]
    assert message.startswith("invalid layer_range: [0, 'x']")


def test_layer_factory_offers_the_class_options_and_the_objective() -> None:
    parameters = inspect.signature(ffdense).parameters
    objective_fields = list(ObjectiveOptions.__annotations__)
    assert list(parameters)[-len(objective_fields) :] == objective_fields
    assert {"in_features", "out_features", "bias", "activation", "norm", "peer_norm"} <= set(
        parameters
    )
    assert not {"eps", "device", "dtype", "objective", "options"} & set(parameters)
    for field in objective_fields:
        assert parameters[field].default == getattr(Objective(), field)
        assert parameters[field].kind is inspect.Parameter.KEYWORD_ONLY
    assert ffdense.__doc__ is not None and ffdense.__doc__.startswith("Fully connected FF layer")
    layer = ffdense(6, 4, activation="gelu", goodness="mean-squares", lr=0.01)
    assert isinstance(layer, FFDense)
    assert layer.activation_name == "gelu" and layer.lr == pytest.approx(0.01)


def test_layer_factory_refuses_unknown_options_with_the_list() -> None:
    message = _message(lambda: ffdense(6, 4, colour="red"))
    assert "'colour'" in message and "peer_norm" in message and "goodness" in message
    message = _message(lambda: ffdense(6, 4, eps=1e-3))  # not an option: how it computes
    assert "'eps'" in message
    registry = Registry("layer")
    spec = registry.register("dense", ffdense)
    assert spec.description.startswith("Fully connected FF layer")
    assert spec.option_names() == list(inspect.signature(ffdense).parameters)
    message = _message(lambda: registry.create("dense", in_features=6, out_features=4, beta=1))
    assert "option for layer 'dense'" in message and "'beta'" in message


class _Scaled(FFLayer):
    """A minimal layer built the kit's way: ``h = relu(scale · x)``."""

    def __init__(
        self, width: int, *, scale: float = 1.0, objective: Objective | None = None
    ) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))
        self.set_objective(objective or Objective(), width)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.scale * x.detach())


def test_layer_factory_positional_defaults_become_keyword_options() -> None:
    factory = layer_factory(_Scaled, "A scaled ReLU.", name="scaled")
    parameters = inspect.signature(factory).parameters
    assert parameters["width"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert parameters["scale"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "'nope'" in _message(lambda: factory(3, nope=1))
    assert "option for layer 'scaled'" in _message(lambda: factory(3, nope=1))


def test_build_layer_remembers_the_registered_name() -> None:
    layer = build_layer("FFLinear", in_features=5, out_features=3, lr=0.02)
    assert isinstance(layer, FFDense)
    assert layer.component_name == "ffdense"  # the canonical name, not the alias
    assert ffcore.create_layer("ffdense", in_features=5, out_features=3).component_name is None


def test_calls_hooks_sees_the_module_and_global_hooks() -> None:
    layer = FFDense(4, 3)
    assert not calls_hooks(layer)
    handle = layer.register_forward_pre_hook(lambda module, args: None)
    assert calls_hooks(layer)
    handle.remove()
    assert not calls_hooks(layer)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert calls_hooks(layer)
    finally:
        handle.remove()
    assert not calls_hooks(layer)
