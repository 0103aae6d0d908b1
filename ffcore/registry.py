"""timm-style helpers: ``list_<kind>()`` and ``create_<kind>(name, **options)``.

They read the process-wide plugin manager, so every installed plugin's components are
available by name::

    >>> import ffcore
    >>> ffcore.list_goodness()
    ['mean-squares', 'neg-mean-squares', 'neg-sum-squares', 'sum-squares']
    >>> g = ffcore.create_goodness("sum-squares")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ffcore.components import ComponentSpec
from ffcore.errors import PluginError
from ffcore.plugin_manager import get_plugin_manager

if TYPE_CHECKING:  # imported where used: the interfaces import torch
    from ffcore.interfaces import (
        DataSplits,
        FFLayer,
        FFLoss,
        FFModel,
        GoodnessFunction,
        NegativeSampler,
        Probe,
    )

T = TypeVar("T")


def list_components(kind: str) -> list[str]:
    """Names registered for ``kind`` (``layer``, ``model``, ``goodness``, ...)."""
    return get_plugin_manager().registry(kind).names()


def get_component(kind: str, name: str) -> ComponentSpec:
    """The spec (factory, description, plugin) of one component."""
    return get_plugin_manager().registry(kind).get(name)


def create_component(kind: str, name: str, /, **options: Any) -> Any:
    """Build the ``kind`` component called ``name`` with ``options``."""
    return get_plugin_manager().registry(kind).create(name, **options)


def build(kind: str, name: str, expected: type[T], /, **options: Any) -> T:
    """Build a component and check that the factory returned an ``expected``."""
    registry = get_plugin_manager().registry(kind)
    obj = registry.create(name, **options)
    if not isinstance(obj, expected):
        spec = registry.get(name)
        raise PluginError(
            f"{kind} {spec.name!r} from plugin {spec.plugin!r} built {type(obj).__name__}, "
            f"expected a {expected.__name__}"
        )
    return obj


def list_layers() -> list[str]:
    """Registered FF layer names."""
    return list_components("layer")


def create_layer(name: str, /, **options: Any) -> FFLayer:
    """Build an FF layer, e.g. ``create_layer("ffdense", in_features=784, out_features=500)``."""
    from ffcore.interfaces import FFLayer

    return build("layer", name, FFLayer, **options)


def list_models() -> list[str]:
    """Registered model names."""
    return list_components("model")


def create_model(
    name: str, /, input_shape: tuple[int, ...], num_classes: int, **options: Any
) -> FFModel:
    """Build a model for inputs of ``input_shape`` and ``num_classes`` labels."""
    from ffcore.interfaces import FFModel

    return build(
        "model",
        name,
        FFModel,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        **options,
    )


def list_goodness() -> list[str]:
    """Registered goodness-function names."""
    return list_components("goodness")


def create_goodness(name: str, /, **options: Any) -> GoodnessFunction:
    """Build a goodness function."""
    from ffcore.interfaces import GoodnessFunction

    return build("goodness", name, GoodnessFunction, **options)


def list_losses() -> list[str]:
    """Registered FF loss names."""
    return list_components("loss")


def create_loss(name: str, /, **options: Any) -> FFLoss:
    """Build an FF loss."""
    from ffcore.interfaces import FFLoss

    return build("loss", name, FFLoss, **options)


def list_probes() -> list[str]:
    """Registered probe names."""
    return list_components("probe")


def create_probe(name: str, /, **options: Any) -> Probe:
    """Build a probe."""
    from ffcore.interfaces import Probe

    return build("probe", name, Probe, **options)


def list_negatives() -> list[str]:
    """Registered negative-sampler names."""
    return list_components("negatives")


def create_negatives(name: str, /, **options: Any) -> NegativeSampler:
    """Build a negative sampler."""
    from ffcore.interfaces import NegativeSampler

    return build("negatives", name, NegativeSampler, **options)


def list_datasets() -> list[str]:
    """Registered dataset names."""
    return list_components("dataset")


def load_dataset(name: str, /, **options: Any) -> DataSplits:
    """Load a dataset's splits, e.g. ``load_dataset("digits", val_split=0.1)``."""
    from ffcore.interfaces import DataSplits

    return build("dataset", name, DataSplits, **options)


def list_presets() -> list[str]:
    """Registered ``ff train`` preset names."""
    return list_components("preset")


def get_preset(name: str, /) -> dict[str, Any]:
    """The settings of a preset, as a dict of ``ff train`` keys."""
    return dict(build("preset", name, dict))
