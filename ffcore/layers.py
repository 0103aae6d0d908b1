"""The layer kit: what FF layer and network plugins share.

Activations and input normalisations by name, the option checks
(:mod:`ffcore.validate`, re-exported here), ``layer_range`` parsing, TryAll's CPU block
size, and :func:`layer_factory`, which turns a layer class into the factory a plugin
registers. No concrete layer lives here: every layer is a plugin component.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as torch_module

from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer, Objective
from ffcore.registry import create_layer, get_component
from ffcore.validate import (
    boolean,
    choice,
    int_list,
    integer,
    non_negative_int,
    number,
    positive_int,
    positive_number,
)

__all__ = [
    "ACTIVATIONS",
    "INPLACE_ACTIVATIONS",
    "NORMS",
    "LayerFactory",
    "boolean",
    "build_layer",
    "calls_hooks",
    "choice",
    "flatten_inputs",
    "images_per_block",
    "input_scale",
    "int_list",
    "integer",
    "layer_factory",
    "non_negative_int",
    "number",
    "parse_layer_range",
    "positive_int",
    "positive_number",
]

#: Activations by name.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky-relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

#: In-place versions, for inference (no autograd): they spare a full-size allocation.
INPLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_,
    "gelu": F.gelu,
    "leaky-relu": F.leaky_relu_,
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "identity": lambda t: t,
}

#: Input normalisations: ``l2`` divides by the Euclidean length (the seed's), ``rms`` by
#: the root mean square (length / sqrt(width)), ``none`` leaves the input as it is.
NORMS = ("l2", "rms", "none")


def input_scale(x: Tensor, norm: str, eps: float) -> Tensor:
    """The factor (shape ``(B, 1)``) that normalises each row of ``x``."""
    if norm == "none":
        return torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    length = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if norm == "rms":
        length = length / (x.shape[1] ** 0.5)
    scale: Tensor = (length + eps).reciprocal()
    return scale


def parse_layer_range(value: Sequence[int | None] | str | None, num_layers: int) -> tuple[int, int]:
    """``[start, stop)`` of the layers whose goodness predicts (Python slice rules).

    Accepts ``None`` (all layers), a pair ``[start, stop]`` or a string ``"start:stop"``
    where either end may be left out (``"1:"`` means every layer but the first).
    """
    if value is None:
        return 0, num_layers
    expected = "'start:stop' or [start, stop] (Python slice rules)"
    try:
        if isinstance(value, str):
            start_text, sep, stop_text = value.partition(":")
            if not sep:
                raise ValueError(value)
            parts = [int(t) if t.strip() else None for t in (start_text, stop_text)]
        else:
            items = list(value) if isinstance(value, Sequence) else []
            if len(items) != 2:
                raise ValueError(value)
            parts = [None if p is None else integer("layer_range", p) for p in items]
    except (ValueError, InvalidValueError):
        raise InvalidValueError("layer_range", value, expected) from None
    start, stop, _ = slice(parts[0], parts[1]).indices(num_layers)
    if start >= stop:
        raise InvalidValueError(
            "layer_range", value, f"a non-empty range of the {num_layers} layers"
        )
    return start, stop


def flatten_inputs(x: Tensor, features: int, owner: str) -> Tensor:
    """``x`` as ``(B, features)`` rows for ``owner`` (a model's name, for the error)."""
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != features:
        raise InvalidValueError(
            "input shape", tuple(x.shape), f"{features} features per sample for this {owner}"
        )
    return flat


#: ``torch.jit``, whose tracing helpers are not typed.
_JIT: Any = torch.jit


def tracing() -> bool:
    """Whether the code runs under ``torch.export``, ``torch.compile`` or ``torch.jit.trace``.

    Blocking a batch into pieces of a fixed size (a speed-up in eager mode) makes the
    number of pieces depend on the batch size, which a graph with a dynamic batch cannot
    hold: traced, models process the batch in one piece.
    """
    return bool(torch.compiler.is_compiling() or _JIT.is_tracing())


def images_per_block(x: Tensor, num_classes: int, cpu_rows: int) -> int:
    """How many of ``x``'s images to score for every label at once: all of them on
    accelerators and when traced (see :func:`tracing`); on the CPU, enough for about
    ``cpu_rows`` rows (images times labels, at least one image), whose activations stay
    in the cache from one operation to the next."""
    if x.device.type != "cpu" or tracing():
        return x.shape[0]
    return max(1, cpu_rows // num_classes)


def calls_hooks(module: nn.Module) -> bool:
    """Whether ``module(x)`` runs hooks around ``forward`` (the module's own or global).

    A layer whose training step computes more than ``forward`` returns (FFDense's fused
    goodness) may call its own method instead of ``module(x)`` only when this is false:
    then ``module(x)`` is ``forward(x)`` and nothing can tell the difference. torch has no
    public accessor for the global hooks; these are the dictionaries ``nn.Module``'s call
    checks itself.
    """
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
        or torch_module._global_backward_hooks
        or torch_module._global_backward_pre_hooks
    )


L = TypeVar("L", bound=FFLayer)

#: Constructor parameters that are no factory options: where the layer lives, its
#: numerical guard, and the objective (whose fields are options instead).
_NOT_OPTIONS = frozenset({"eps", "device", "dtype", "objective"})


class LayerFactory(Generic[L]):
    """The registrable factory of a layer class (see :func:`layer_factory`)."""

    def __init__(self, layer_class: type[L], description: str, name: str) -> None:
        self.layer_class = layer_class
        self.__name__ = self.__qualname__ = name
        self.__doc__ = description
        self.__module__ = layer_class.__module__
        own = [
            p
            for p in inspect.signature(layer_class).parameters.values()
            if p.name not in _NOT_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        keyword = [p if p.default is p.empty else p.replace(kind=p.KEYWORD_ONLY) for p in own]
        objective = [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
            )
            for f in dataclasses.fields(Objective)
        ]
        self.__signature__ = inspect.Signature([*keyword, *objective])
        self.options = tuple(self.__signature__.parameters)

    def __call__(self, *args: Any, **options: Any) -> L:
        for option in options:
            if option not in self.options:
                raise InvalidValueError(
                    f"option for layer {self.__name__!r}",
                    option,
                    f"one of: {', '.join(self.options)}",
                )
        return self.layer_class(*args, **options)

    def __repr__(self) -> str:
        return f"<layer factory {self.__name__} of {self.layer_class.__name__}>"


def layer_factory(layer_class: type[L], description: str, *, name: str = "") -> LayerFactory[L]:
    """The factory a plugin registers for ``layer_class``.

    Its options are the class's keyword options (less ``eps``, ``device`` and ``dtype``)
    and :class:`~ffcore.interfaces.Objective`'s fields, with their defaults, so option
    checks (``ComponentSpec.option_names``) and ``-O model.<option>`` see them all; a class
    takes the objective's fields as keyword options (``**options:
    Unpack[ObjectiveOptions]``) and hands them to :meth:`Objective.of`. ``description``
    is the one line ``ff list-plugins`` shows; ``name`` (the class name in lower case by
    default) names the factory in error messages.
    """
    return LayerFactory(layer_class, description, name or layer_class.__name__.lower())


def build_layer(name: str, /, **options: Any) -> FFLayer:
    """The layer registered as ``name``, built with ``options``.

    The layer keeps its registered name (``component_name``), which a model reports in
    :meth:`~ffcore.interfaces.FFModel.component_names` for the run's checkpoint.
    """
    layer = create_layer(name, **options)
    layer.component_name = get_component("layer", name).name
    return layer
