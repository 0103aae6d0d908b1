"""FFLib core: interfaces, registries, the plugin manager, training and the CLI.

Concrete layers, models, datasets and the rest are plugins (see ``ffplugins`` for the
built-ins); this package only defines what they implement and how they are found.
Importing it does not import torch: the ``list_*``/``create_*`` helpers load on first use.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import TYPE_CHECKING, Any

from ffcore.components import KINDS, ComponentSpec, Registry
from ffcore.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    FFLibError,
    InvalidValueError,
    PluginError,
    UnknownComponentError,
)
from ffcore.hookspecs import hookimpl, hookspec
from ffcore.plugin_manager import FFPluginManager, configure_plugins, get_plugin_manager

if TYPE_CHECKING:  # imported on first use (module __getattr__ below): they import torch
    from ffcore.inference import TrainedModel
    from ffcore.registry import (
        create_component,
        create_goodness,
        create_layer,
        create_loss,
        create_model,
        create_negatives,
        create_probe,
        get_component,
        get_preset,
        list_components,
        list_datasets,
        list_goodness,
        list_layers,
        list_losses,
        list_models,
        list_negatives,
        list_presets,
        list_probes,
        load_dataset,
    )


def __getattr__(name: str) -> Any:
    """The registry helpers and the submodules (``ffcore.interfaces``...), imported on
    first use: they import torch, which ``ff --version`` and shell completion never need."""
    if name in __all__:  # everything in __all__ not imported above is a registry helper
        from ffcore import registry

        return getattr(registry, name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path: str | os.PathLike[str], **options: Any) -> TrainedModel:
    """A trained model from a checkpoint or an exported ``.safetensors`` file, ready to
    classify raw data: ``ffcore.load("runs/ffc-digits.pt").predict(images)``.

    See :func:`ffcore.inference.load` for the options (``device``, ``probe``...).
    """
    from ffcore.inference import load as load_trained

    return load_trained(path, **options)


try:
    __version__ = metadata.version("fflib")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "KINDS",
    "CheckpointError",
    "ComponentSpec",
    "ConfigError",
    "DataError",
    "FFLibError",
    "FFPluginManager",
    "InvalidValueError",
    "PluginError",
    "Registry",
    "UnknownComponentError",
    "__version__",
    "configure_plugins",
    "create_component",
    "create_goodness",
    "create_layer",
    "create_loss",
    "create_model",
    "create_negatives",
    "create_probe",
    "get_component",
    "get_plugin_manager",
    "get_preset",
    "hookimpl",
    "hookspec",
    "list_components",
    "list_datasets",
    "list_goodness",
    "list_layers",
    "list_losses",
    "list_models",
    "list_negatives",
    "list_presets",
    "list_probes",
    "load",
    "load_dataset",
]
