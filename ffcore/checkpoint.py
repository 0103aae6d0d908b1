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
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ffcore.checkpoint_schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    check_format_version,
    check_payload,
    parse_description,
    schema_error,
)
from ffcore.checkpoint_tensors import check_model_state, check_optimizer_states
from ffcore.errors import CheckpointError, FFLibError
from ffcore.interfaces import FFModel
from ffcore.output import temp_prefix
from ffcore.plugin_manager import get_plugin_manager
from ffcore.registry import build
from ffcore.sizing import MemoryLimitError, on_meta_device

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Checkpoint", "atomic_write", "load_checkpoint"]
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


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _RecordingFile:
    """A binary file that remembers the first ``OSError`` its writes raised.

    ``torch.save`` reports a failed write (disk full, file too large) as a ``RuntimeError``
    about zip positions; the recorded error says what actually happened.
    """

    def __init__(self, file: Any) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self.file.write(data))
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:
        return int(self.file.fileno())


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file, fsync it and rename it to ``path``.

    The file gets the permissions the umask allows (``0666 & ~umask``), or those of the
    file it replaces. The temporary is named ``.NAME.PID.XXXXXXXX.tmp``, so that one left
    by a killed process can be told apart and cleaned (:mod:`ffcore.output`). A failed
    write raises the ``OSError`` that caused it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as raw:
            file = _RecordingFile(raw)
            try:
                write(file)
            except RuntimeError:
                if file.error is not None:
                    raise file.error from None
                raise
            raw.flush()
            os.fsync(raw.fileno())
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                mode = 0o666 & ~current_umask()
            os.fchmod(raw.fileno(), mode)
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
    check_format_version(payload.get("format_version"), path)
    payload["meta"] = parse_description(payload.get("meta"), path)
    check_payload(payload, path)
    return payload


def restore_weights(
    model: FFModel, payload: dict[str, Any], path: str | os.PathLike[str]
) -> list[Any]:
    """Load a checkpoint payload's weights and optimizer states into ``model``.

    Call it after ``model.to(device)``: optimizer states follow their parameters' device.
    Every tensor is checked against the model before any is loaded
    (:mod:`ffcore.checkpoint_tensors`).
    """
    optimizer_states = list(payload.get("optimizers", []))
    optimizers = model.optimizers()
    check_model_state(model, payload["model"], path)
    check_optimizer_states(optimizers, optimizer_states, path)
    try:
        model.load_state_dict(payload["model"])
        for optimizer, optimizer_state in zip(optimizers, optimizer_states, strict=True):
            optimizer.load_state_dict(optimizer_state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        reason = " ".join(line.strip() for line in first[:3]) if first else type(exc).__name__
        raise CheckpointError(f"{path}: weights do not fit this model: {reason}") from None
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
    model = build_saved_model(meta, payload["model"], path)
    model.to(map_location)
    optimizer_states = restore_weights(model, payload, path)
    return Checkpoint(model=model, meta=meta, optimizer_states=optimizer_states)


def build_saved_model(
    meta: Mapping[str, Any], weights: Mapping[str, Any], path: str | os.PathLike[str]
) -> FFModel:
    """The model a (checked) description names, built only once the weights the file
    holds are known to be that model's.

    It is built first on the ``meta`` device (no memory) and its weights' names, shapes
    and dtypes compared with the file's: options that ask for a model larger than the
    file holds (``layers = [1e9]``) are refused before anything is allocated.
    """
    model_meta = meta["model"]
    options = dict(model_meta.get("options", {}))

    def make() -> FFModel:
        return build(
            "model",
            model_meta["name"],
            FFModel,
            input_shape=tuple(meta["input_shape"]),
            num_classes=int(meta["num_classes"]),
            **options,
        )

    try:
        outline = on_meta_device(make)
        if outline is not None:
            check_model_state(outline, weights, path)
        return make()
    except (CheckpointError, MemoryLimitError):
        raise
    except FFLibError as exc:
        expected = f"options model {model_meta['name']!r} takes ({exc})"
        raise schema_error(path, "model.options", expected) from None
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        message = str(exc).strip().splitlines()
        reason = message[0] if message else type(exc).__name__
        expected = f"options model {model_meta['name']!r} can be built from ({reason})"
        raise schema_error(path, "model.options", expected) from None
