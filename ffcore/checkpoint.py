"""Safe, atomic checkpoints.

A checkpoint is one file written by ``torch.save`` holding only plain data: the model's
``state_dict``, each optimizer's ``state_dict`` and a JSON description (format version,
FFLib version, component names and options, epoch, metrics). It is read back with
``torch.load(weights_only=True)``, so opening a checkpoint never runs code, and the model
is rebuilt through the registries, so a checkpoint survives classes moving between
modules. Writes go to a temporary file that is flushed, fsynced and renamed over the
target: a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ffcore.errors import CheckpointError
from ffcore.interfaces import FFModel
from ffcore.plugin_manager import get_plugin_manager
from ffcore.registry import build

FORMAT_NAME = "fflib-checkpoint"
FORMAT_VERSION = 1
#: The component kinds the model itself is built from (a checkpoint needs them to load).
MODEL_KINDS = ("model", "layer", "goodness", "loss")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model and its description."""

    model: FFModel
    meta: dict[str, Any]
    optimizer_states: list[dict[str, Any]]


def _fflib_version() -> str:
    from ffcore import __version__

    return __version__


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file, fsync it and rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: FFModel,
    *,
    model_name: str,
    model_options: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    extra: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` and its description to ``path`` atomically; return the path.

    ``model_options`` must be JSON-serialisable: they rebuild the model on load. ``extra``
    goes into the description as is (epoch, metrics, dataset, probe, config...). ``state``
    (plain tensors and numbers: RNG states, counters) is what resuming needs. ``weights``
    are saved as the model's instead of its current ones (a run's kept epoch).
    """
    source = component_source("model", model_name)
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fflib_version": _fflib_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {**source, "options": model_options},
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        **(extra or {}),
    }
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint description is not JSON-serialisable: {exc}") from exc
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "meta": meta_json,
        "model": {k: v.detach().cpu() for k, v in (weights or model.state_dict()).items()},
        "optimizers": [optimizer.state_dict() for optimizer in model.optimizers()],
        "state": state,
    }
    target = Path(path)
    atomic_write(target, lambda file: torch.save(payload, file))
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw payload of a checkpoint, read safely (``weights_only=True``) and checked."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects beyond plain tensors and "
            f"containers (loading it could run code): {str(exc).splitlines()[0]}"
        ) from None
    except Exception as exc:  # torch raises many kinds on damaged or foreign files
        raise CheckpointError(
            f"{path} is not a readable FFLib checkpoint (truncated or another format): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not an FFLib checkpoint (no {FORMAT_NAME!r} marker)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this FFLib "
            f"({_fflib_version()}) reads versions up to {FORMAT_VERSION}: upgrade fflib"
        )
    try:
        payload["meta"] = json.loads(payload["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: checkpoint description is damaged: {exc}") from None
    return payload


def restore_weights(
    model: FFModel, payload: dict[str, Any], path: str | os.PathLike[str]
) -> list[Any]:
    """Load a checkpoint payload's weights and optimizer states into ``model``.

    Call it after ``model.to(device)``: optimizer states follow their parameters' device.
    """
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit this model: {exc}") from None
    optimizer_states = list(payload.get("optimizers", []))
    optimizers = model.optimizers()
    if len(optimizer_states) != len(optimizers):
        raise CheckpointError(
            f"{path}: holds {len(optimizer_states)} optimizer states, the model has "
            f"{len(optimizers)} optimizers"
        )
    for optimizer, optimizer_state in zip(optimizers, optimizer_states, strict=True):
        optimizer.load_state_dict(optimizer_state)
    return optimizer_states


def component_source(kind: str, name: str) -> dict[str, Any]:
    """The component's canonical name, plugin and distribution: what a checkpoint records
    so that loading it without that plugin can say what to install."""
    manager = get_plugin_manager()
    spec = manager.registry(kind).get(name)
    info = manager.plugin(spec.plugin)
    return {
        "name": spec.name,
        "plugin": spec.plugin,
        "distribution": info.distribution if info else None,
    }


def component_sources(names: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """:func:`component_source` of every named component, by kind (unnamed ones skipped)."""
    registries = get_plugin_manager().registries
    return {
        kind: component_source(kind, name)
        for kind, name in names.items()
        if name is not None and kind in registries and name in registries[kind]
    }


def _recorded(meta: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """What the description says about the ``kind`` component: name, plugin, distribution.

    Checkpoints written before sources were recorded name the model's plugin only, and the
    other components by name (``components``).
    """
    if kind == "model" and isinstance(meta.get("model"), Mapping):
        return dict(meta["model"])
    source = (meta.get("component_sources") or {}).get(kind)
    if isinstance(source, Mapping):
        return dict(source)
    name = (meta.get("components") or {}).get(kind)
    return {"name": name} if isinstance(name, str) else None


def require_components(
    meta: Mapping[str, Any], kinds: Iterable[str], path: str | os.PathLike[str]
) -> None:
    """Raise :class:`CheckpointError` naming the plugin and distribution of the first
    component of ``kinds`` the checkpoint needs that no enabled plugin registers."""
    manager = get_plugin_manager()
    for kind in kinds:
        recorded = _recorded(meta, kind)
        if recorded is None or not isinstance(recorded.get("name"), str):
            continue
        name = recorded["name"]
        if name in manager.registry(kind):
            continue
        plugin, dist = recorded.get("plugin"), recorded.get("distribution")
        if plugin is None:
            raise CheckpointError(
                f"{path} needs {kind} {name!r}, which no enabled plugin registers: install "
                "or enable the plugin that provides it"
            )
        source = f"plugin {plugin!r}" + (f" (distribution {dist!r})" if dist else "")
        raise CheckpointError(
            f"{path} needs {kind} {name!r} from {source}, which is not installed or is "
            "disabled: install or enable that plugin"
        )


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Rebuild the model saved in ``path`` through the registries and load its weights."""
    payload = read_checkpoint(path)
    meta = payload["meta"]
    require_components(meta, MODEL_KINDS, path)
    model_meta = meta.get("model", {})
    name = model_meta.get("name")
    model = build(
        "model",
        name,
        FFModel,
        input_shape=tuple(meta["input_shape"]),
        num_classes=int(meta["num_classes"]),
        **model_meta.get("options", {}),
    )
    model.to(map_location)
    optimizer_states = restore_weights(model, payload, path)
    return Checkpoint(model=model, meta=meta, optimizer_states=optimizer_states)
