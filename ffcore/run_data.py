"""A run's data set: the options its factory gets, from a config or from a checkpoint.

Training (:func:`dataset_kwargs`), ``ff eval`` and ``ff debug`` (:func:`load_saved_data`)
build a data set the same way here, so a data root is refused by a data set that reads no
files, ``download`` reaches only factories that take it, and a checkpoint's model is never
fed data of another shape, whichever command asks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ffcore.checkpoint import require_components
from ffcore.checkpoint_schema import schema_error
from ffcore.component_options import check_component_options
from ffcore.components import ComponentSpec
from ffcore.config import TrainConfig
from ffcore.errors import DataError, InvalidValueError
from ffcore.interfaces import DataSplits
from ffcore.plugin_manager import get_plugin_manager
from ffcore.registry import build

#: Data set options that say where data comes from: a checkpoint's values are ignored
#: (the user's command line and environment decide), so opening a file never creates a
#: directory or starts a download it names.
LOCATION_OPTIONS = ("root", "download")


def with_location(
    spec: ComponentSpec,
    options: Mapping[str, Any],
    *,
    data_root: str | None,
    download: bool | None,
) -> dict[str, Any]:
    """``options`` plus ``root=`` and ``download=`` where the data set takes them.

    A ``data_root`` for a data set that reads no files is an error rather than ignored:
    the user meant some other data set.
    """
    kwargs = dict(options)
    if data_root is not None:
        if not spec.accepts("root"):
            raise InvalidValueError(
                "data_root", data_root, f"no data root: dataset {spec.name!r} needs no files"
            )
        kwargs["root"] = data_root
    if download is not None and spec.accepts("download"):
        kwargs["download"] = download
    return kwargs


def dataset_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Options for the dataset factory from the config's dataset settings."""
    spec = get_plugin_manager().registry("dataset").get(config.dataset)
    common = {"val_split": config.val_split, "use": config.use, "seed": config.seed}
    kwargs = with_location(spec, common, data_root=config.data_root, download=config.download)
    kwargs.update(config.dataset_options)
    return {k: v for k, v in kwargs.items() if spec.accepts(k) or k in config.dataset_options}


def load_saved_data(
    meta: Mapping[str, Any],
    *,
    dataset: str | None = None,
    data_root: str | None = None,
    download: bool | None = None,
    path: str | os.PathLike[str] = "the checkpoint",
) -> DataSplits:
    """The data set a checkpoint's model was trained on, with the options it was saved with
    (or another data set, ``dataset``, with its defaults), checked to fit the model."""
    saved: Mapping[str, Any] = meta.get("dataset") or {}
    name = dataset or saved.get("name")
    if not name:
        raise DataError(f"{path} names no data set: pass --dataset NAME")
    options: dict[str, Any] = {}
    if not dataset:
        require_components(meta, ("dataset",), path)
        stored = saved.get("options") or {}
        options = {k: v for k, v in stored.items() if k not in LOCATION_OPTIONS}
    spec = get_plugin_manager().registry("dataset").get(str(name))
    kwargs = with_location(spec, options, data_root=data_root, download=download)
    try:
        check_component_options(spec, options)
        data = build("dataset", spec.name, DataSplits, **kwargs)
    except InvalidValueError as exc:
        option = exc.field.removeprefix("dataset.")
        if option not in options:
            raise
        raise schema_error(path, f"dataset.options.{option}", exc.expected, exc.value) from None
    shape, classes = tuple(meta.get("input_shape", ())), meta.get("num_classes")
    if tuple(data.input_shape) != shape or data.num_classes != classes:
        raise DataError(
            f"dataset {spec.name!r} has inputs of shape {tuple(data.input_shape)} and "
            f"{data.num_classes} classes; the model takes {shape} and {classes}"
        )
    return data
