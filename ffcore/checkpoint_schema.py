"""The one schema a checkpoint's description (its JSON ``meta``) and payload must fit.

A checkpoint is data from outside: it may be damaged, truncated by hand or crafted. Every
field FFLib reads from it is checked here, once, when the file is read, so that a bad file
gives ``FILE: field X: expected ...`` rather than a ``KeyError``, a ``TypeError`` or an
allocation of ``num_classes`` = 1e12 somewhere later. Sizes are bounded by
:mod:`ffcore.limits`. Fields this version does not know are left alone, so that a newer
FFLib may add some without breaking older readers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, TypeGuard

from torch import Tensor

from ffcore.errors import CheckpointError, InvalidValueError
from ffcore.limits import (
    MAX_CLASSES,
    MAX_COUNTER,
    MAX_DESCRIPTION_BYTES,
    MAX_INPUT_DIMS,
    MAX_INPUT_FEATURES,
    MAX_NESTING,
    nesting_depth,
)

FORMAT_NAME = "fflib-checkpoint"
FORMAT_VERSION = 1

_OPTIONAL = object()


def shown(value: object, limit: int = 60) -> str:
    """A short, one-line ``repr`` of ``value`` for an error message."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a table of {len(value)} entries"
    if isinstance(value, list | tuple) and len(repr(value)) > limit:
        return f"a list of {len(value)} items"
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_error(
    path: str | os.PathLike[str], field: str, expected: str, value: object = _OPTIONAL
) -> CheckpointError:
    """``FILE: field X: expected ... (got ...)``: one line naming what is wrong."""
    got = "" if value is _OPTIONAL else f" (got {shown(value)})"
    return CheckpointError(f"{path}: field {field}: expected {expected}{got}")


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_format_version(version: object, path: str | os.PathLike[str]) -> int:
    """The format version, if this FFLib reads it (1 up to :data:`FORMAT_VERSION`)."""
    from ffcore import __version__

    if is_int(version) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this FFLib ({__version__}) "
            f"reads versions up to {FORMAT_VERSION}: upgrade fflib"
        )
    if not is_int(version) or version < 1:
        raise schema_error(
            path, "format_version", f"an integer from 1 to {FORMAT_VERSION}", version
        )
    return int(version)


def parse_description(text: object, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The payload's ``meta`` string as a checked description."""
    if not isinstance(text, str):
        raise schema_error(path, "meta", "a JSON description (a string)", text)
    if len(text) > MAX_DESCRIPTION_BYTES:
        raise schema_error(
            path, "meta", f"a JSON description of at most {MAX_DESCRIPTION_BYTES:,} characters"
        )
    try:
        meta = json.loads(text)
    except RecursionError:
        raise schema_error(path, "meta", f"JSON nested at most {MAX_NESTING} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a 5,000-digit number
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise schema_error(path, "meta", f"valid JSON ({message})") from None
    check_description(meta, path)
    checked: dict[str, Any] = meta
    return checked


def _string(
    meta: Mapping[str, Any], key: str, path: Any, *, optional: bool = True, field: str = ""
) -> None:
    value = meta.get(key)
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise schema_error(path, field or key, "a non-empty string", value)


def _table(value: object, field: str, path: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise schema_error(path, field, "a table (a JSON object)", value)
    return value


def _counter(meta: Mapping[str, Any], key: str, path: Any) -> None:
    if key in meta and meta[key] is not None:
        value = meta[key]
        if not is_int(value) or not 0 <= value <= MAX_COUNTER:
            raise schema_error(path, key, f"an integer from 0 to {MAX_COUNTER}", value)


def _source(value: object, field: str, path: Any) -> None:
    table = _table(value, field, path)
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise schema_error(path, f"{field}.name", "a component name (a string)", name)
    for key in ("plugin", "distribution"):
        if table.get(key) is not None and not isinstance(table[key], str):
            raise schema_error(path, f"{field}.{key}", "a string or null", table[key])


def _metrics(value: object, field: str, path: Any) -> None:
    for key, number in _table(value, field, path).items():
        if number is not None and not is_number(number):
            raise schema_error(path, f"{field}.{key}", "a number or null", number)


def check_input_shape(value: object, path: Any, field: str = "input_shape") -> tuple[int, ...]:
    """An input shape: 1 to :data:`MAX_INPUT_DIMS` positive sizes, at most
    :data:`MAX_INPUT_FEATURES` features in all."""
    expected = (
        f"a list of 1 to {MAX_INPUT_DIMS} positive integers with at most "
        f"{MAX_INPUT_FEATURES:,} features in all"
    )
    if (
        not isinstance(value, list | tuple)
        or not 1 <= len(value) <= MAX_INPUT_DIMS
        or not all(is_int(size) and 1 <= size <= MAX_INPUT_FEATURES for size in value)
        or math.prod(value) > MAX_INPUT_FEATURES
    ):
        raise schema_error(path, field, expected, value)
    return tuple(value)


def check_num_classes(value: object, path: Any, field: str = "num_classes") -> int:
    """A class count from 2 to :data:`MAX_CLASSES`."""
    if not is_int(value) or not 2 <= value <= MAX_CLASSES:
        raise schema_error(path, field, f"an integer from 2 to {MAX_CLASSES:,}", value)
    return int(value)


def check_description(meta: object, path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` unless ``meta`` fits the description schema."""
    if not isinstance(meta, dict):
        raise schema_error(path, "meta", "a table (a JSON object)", meta)
    if nesting_depth(meta) > MAX_NESTING:
        raise schema_error(path, "meta", f"JSON nested at most {MAX_NESTING} levels deep")
    if "format" in meta and meta["format"] != FORMAT_NAME:
        raise schema_error(path, "format", repr(FORMAT_NAME), meta["format"])
    if "format_version" in meta:
        check_format_version(meta["format_version"], path)
    _string(meta, "fflib_version", path)
    _string(meta, "created", path)
    model = _table(meta.get("model"), "model", path)
    _source(model, "model", path)
    _table(model.get("options", {}), "model.options", path)
    if "input_shape" not in meta:
        raise schema_error(path, "input_shape", "the model's input shape (the field is missing)")
    check_input_shape(meta["input_shape"], path)
    if "num_classes" not in meta:
        raise schema_error(path, "num_classes", "the model's class count (the field is missing)")
    classes = check_num_classes(meta["num_classes"], path)
    if meta.get("dataset") is not None:
        dataset = _table(meta["dataset"], "dataset", path)
        _string(dataset, "name", path, optional=False, field="dataset.name")
        _table(dataset.get("options", {}), "dataset.options", path)
    for key in ("probe", "negatives"):
        _string(meta, key, path)
    for key, name in _table(meta.get("components", {}), "components", path).items():
        if name is not None and not isinstance(name, str):
            raise schema_error(path, f"components.{key}", "a component name or null", name)
    for key, source in _table(meta.get("component_sources", {}), "component_sources", path).items():
        _source(source, f"component_sources.{key}", path)
    _counter(meta, "epoch", path)
    _counter(meta, "batch", path)
    _counter(meta, "kept_epoch", path)
    if meta.get("preprocessing") is not None:
        from ffcore.interfaces import Preprocessing

        try:
            Preprocessing.from_dict(meta["preprocessing"])
        except InvalidValueError as exc:
            field = "preprocessing." + exc.field.removeprefix("preprocessing").strip()
            raise schema_error(path, field.rstrip("."), exc.expected, exc.value) from None
    if "complete" in meta and not isinstance(meta["complete"], bool):
        raise schema_error(path, "complete", "true or false", meta["complete"])
    _metrics(meta.get("metrics", {}), "metrics", path)
    history = meta.get("history", [])
    if not isinstance(history, list):
        raise schema_error(path, "history", "a list of per-epoch metrics", history)
    for index, entry in enumerate(history):
        _metrics(entry, f"history[{index}]", path)
    if meta.get("config") is not None:
        config = _table(meta["config"], "config", path)
        # what ff eval and ff debug read from it; resuming checks all of it as a TrainConfig
        for key in ("model_options", "dataset_options", "negatives_options", "plugin_options"):
            if config.get(key) is not None:
                _table(config[key], f"config.{key}", path)
        for key in ("precision", "negatives", "model", "dataset"):
            _string(config, key, path, field=f"config.{key}")
    names = meta.get("class_names", [])
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
        or len(names) not in (0, classes)
    ):
        raise schema_error(path, "class_names", f"a list of {classes} class names (or none)", names)


def check_payload(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """The parts of a payload beside the description: weights, optimizer states, state.

    Their contents are checked against the rebuilt model (see
    :mod:`ffcore.checkpoint_tensors`); here only their outline.
    """
    weights = payload.get("model")
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in weights.items()
    ):
        raise schema_error(path, "model", "the model's weights (a table of tensors)", weights)
    optimizers = payload.get("optimizers", [])
    if not isinstance(optimizers, list):
        raise schema_error(path, "optimizers", "a list of optimizer states", optimizers)
    for index, state in enumerate(optimizers):
        field = f"optimizers[{index}]"
        if not isinstance(state, dict):
            raise schema_error(path, field, "an optimizer state (a table)", state)
        if not isinstance(state.get("state"), dict):
            raise schema_error(path, f"{field}.state", "a table", state.get("state"))
        groups = state.get("param_groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise schema_error(path, f"{field}.param_groups", "a list of tables", groups)
    if payload.get("state") is not None and not isinstance(payload["state"], dict):
        raise schema_error(path, "state", "the training state (a table)", payload["state"])
