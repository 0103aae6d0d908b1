"""Component options (``-O model.X=V``, ``[model_options]``) checked against their factory.

A component's options are its factory's keyword parameters; their declared types (the
annotations, or the type of the default where there is none) are the options' types. Each
option given is checked against that type once, when the config is built, so that
``-O negatives.temperature='x'`` or ``-O dataset.noise=inf`` is refused before anything
runs, naming the option, instead of surfacing as a ``TypeError`` deep in training. Model
factories that hand their other options to each layer (``**layer_options`` beside a
``layer`` parameter, as ``ffnet`` and ``ffc`` do) get those checked against the layer's
factory. Options whose type cannot be told are left to the factory's own checks.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ffcore.components import ComponentSpec
from ffcore.errors import InvalidValueError
from ffcore.settings import describe_type, fits

#: The parameter naming the layer that receives a model's ``**layer_options``.
LAYER_PARAMETER = "layer"
_SCALARS = (bool, int, float, str)


def _resolve(annotation: Any, factory: Callable[..., Any]) -> Any:
    """An annotation as a type (string annotations evaluated in the factory's module)."""
    if not isinstance(annotation, str):
        return annotation
    owner = getattr(factory, "layer_class", factory)
    module = sys.modules.get(getattr(owner, "__module__", ""), None)
    namespace: dict[str, Any] = {**vars(typing), **(vars(module) if module else {})}
    try:
        return eval(annotation, namespace)  # the plugin's own source text, not user input
    except Exception:
        return Any


def option_types(factory: Callable[..., Any]) -> tuple[dict[str, Any], inspect.Parameter | None]:
    """The keyword options of ``factory`` with their types, and its ``**`` parameter."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}, None
    types: dict[str, Any] = {}
    rest = None
    for parameter in parameters:
        if parameter.kind is parameter.VAR_KEYWORD:
            rest = parameter
            continue
        if parameter.kind not in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            continue
        hint = _resolve(parameter.annotation, factory)
        if hint is inspect.Parameter.empty:
            default = parameter.default
            hint = type(default) if isinstance(default, _SCALARS) else Any
            if hint is int:  # an integer default does not make 0.5 wrong
                hint = int | float
        types[parameter.name] = hint
    return types, rest


def _layer_spec(
    options: Mapping[str, Any], types: Mapping[str, Any], factory: Callable[..., Any]
) -> ComponentSpec | None:
    from ffcore.plugin_manager import get_plugin_manager

    if LAYER_PARAMETER not in types:
        return None
    name = options.get(LAYER_PARAMETER)
    if name is None:
        default = inspect.signature(factory).parameters[LAYER_PARAMETER].default
        name = default if isinstance(default, str) else None
    registry = get_plugin_manager().registry("layer")
    return registry.get(name) if isinstance(name, str) and name in registry else None


def check_component_options(spec: ComponentSpec, options: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidValueError` for an option whose value does not fit its type.

    The error names the option as ``KIND.NAME`` (``model.maximise``), as ``-O`` spells it.
    """
    types, rest = option_types(spec.factory)
    layer = _layer_spec(options, types, spec.factory) if rest is not None else None
    layer_types = option_types(layer.factory)[0] if layer is not None else {}
    for name, value in options.items():
        hint = types.get(name, layer_types.get(name, Any))
        if hint is Any or fits(value, hint):
            continue
        raise InvalidValueError(f"{spec.kind}.{name}", value, describe_type(hint))
