"""timm-style helpers: ``list_<kind>()`` and ``create_<kind>(name, **options)``.

They read the process-wide plugin manager, so every installed plugin's components are
available by name::

    >>> import ffcore
    >>> ffcore.list_goodness()
    ['mean-squares', 'neg-mean-squares', 'neg-sum-squares', 'sum-squares']
    >>> g = ffcore.create_goodness("sum-squares")
"""

from __future__ import annotations

from typing import Any

from ffcore.components import ComponentSpec
from ffcore.errors import PluginError
from ffcore.interfaces import (
    DataSplits,
    FFLayer,
    FFLoss,
    FFModel,
    GoodnessFunction,
    NegativeSampler,
    Probe,
)
from ffcore.plugin_manager import get_plugin_manager


def list_components(kind: str) -> list[str]:
    """Names registered for ``kind`` (``layer``, ``model``, ``goodness``, ...)."""
    return get_plugin_manager().registry(kind).names()


def get_component(kind: str, name: str) -> ComponentSpec:
    """The spec (factory, description, plugin) of one component."""
    return get_plugin_manager().registry(kind).get(name)


def create_component(kind: str, name: str, /, **options: Any) -> Any:
    """Build the ``kind`` component called ``name`` with ``options``."""
    return get_plugin_manager().registry(kind).create(name, **options)


def _expect(kind: str, name: str, obj: Any, cls: type) -> Any:
    if not isinstance(obj, cls):
        spec = get_component(kind, name)
        raise PluginError(
            f"{kind} {spec.name!r} from plugin {spec.plugin!r} built {type(obj).__name__}, "
            f"expected a {cls.__name__}"
        )
    return obj


def list_layers() -> list[str]:
    """Registered FF layer names."""
    return list_components("layer")


def create_layer(name: str, /, **options: Any) -> FFLayer:
    """Build an FF layer, e.g. ``create_layer("ffdense", in_features=784, out_features=500)``."""
    layer: FFLayer = _expect("layer", name, create_component("layer", name, **options), FFLayer)
    return layer


def list_models() -> list[str]:
    """Registered model names."""
    return list_components("model")


def create_model(
    name: str, /, input_shape: tuple[int, ...], num_classes: int, **options: Any
) -> FFModel:
    """Build a model for inputs of ``input_shape`` and ``num_classes`` labels."""
    obj = create_component(
        "model", name, input_shape=tuple(input_shape), num_classes=num_classes, **options
    )
    model: FFModel = _expect("model", name, obj, FFModel)
    return model


def list_goodness() -> list[str]:
    """Registered goodness-function names."""
    return list_components("goodness")


def create_goodness(name: str, /, **options: Any) -> GoodnessFunction:
    """Build a goodness function."""
    obj = create_component("goodness", name, **options)
    goodness: GoodnessFunction = _expect("goodness", name, obj, GoodnessFunction)
    return goodness


def list_losses() -> list[str]:
    """Registered FF loss names."""
    return list_components("loss")


def create_loss(name: str, /, **options: Any) -> FFLoss:
    """Build an FF loss."""
    loss: FFLoss = _expect("loss", name, create_component("loss", name, **options), FFLoss)
    return loss


def list_probes() -> list[str]:
    """Registered probe names."""
    return list_components("probe")


def create_probe(name: str, /, **options: Any) -> Probe:
    """Build a probe."""
    probe: Probe = _expect("probe", name, create_component("probe", name, **options), Probe)
    return probe


def list_negatives() -> list[str]:
    """Registered negative-sampler names."""
    return list_components("negatives")


def create_negatives(name: str, /, **options: Any) -> NegativeSampler:
    """Build a negative sampler."""
    obj = create_component("negatives", name, **options)
    sampler: NegativeSampler = _expect("negatives", name, obj, NegativeSampler)
    return sampler


def list_datasets() -> list[str]:
    """Registered dataset names."""
    return list_components("dataset")


def load_dataset(name: str, /, **options: Any) -> DataSplits:
    """Load a dataset's splits, e.g. ``load_dataset("digits", val_split=0.1)``."""
    obj = create_component("dataset", name, **options)
    splits: DataSplits = _expect("dataset", name, obj, DataSplits)
    return splits


def list_presets() -> list[str]:
    """Registered ``ff train`` preset names."""
    return list_components("preset")


def get_preset(name: str, /) -> dict[str, Any]:
    """The settings of a preset, as a dict of ``ff train`` keys."""
    settings = create_component("preset", name)
    if not isinstance(settings, dict):
        raise PluginError(f"preset {name!r} returned {type(settings).__name__}, expected a dict")
    return dict(settings)
