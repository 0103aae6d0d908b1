"""``ff export``: a trained model in a file that other tools load.

- ``safetensors``: the weights, with the checkpoint's JSON description in the metadata
  header; ``ffcore.load`` reads it back (the model is rebuilt through the registries, so
  FFLib and the model's plugin are needed; no optimizer state, no training state).
- ``onnx``: the inference graph (:class:`~ffcore.inference.InferenceGraph`) through
  ``torch.onnx.export``'s dynamo exporter (needs ``pip install 'fflib[export]'``).
- ``torchscript``: the same graph traced by ``torch.jit.trace`` (loads in LibTorch).
- ``pt2``: the same graph as a ``torch.export`` program (``torch.export.load``).

The graphs take float inputs ``(batch, *input_shape)`` on the ``[0, 1]`` scale (raw
integers divided by ``raw_max``: 8-bit pixels / 255), standardise them as the training data
were, and return ``(scores, label)``: every label's score (goodness or logits) and its
argmax, for any batch size. The description travels in each file (ONNX metadata
``fflib``, an extra file ``fflib.json`` in the other two).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ffcore.checkpoint import (
    FORMAT_VERSION,
    MODEL_KINDS,
    atomic_write,
    build_saved_model,
    require_components,
)
from ffcore.checkpoint_schema import parse_description
from ffcore.checkpoint_tensors import check_model_state
from ffcore.errors import CheckpointError, FFLibError
from ffcore.inference import InferenceGraph, TrainedModel
from ffcore.interfaces import FFModel

FORMATS = ("safetensors", "onnx", "torchscript", "pt2")
#: The metadata key of a safetensors export and the description key of the graphs.
SAFETENSORS_FORMAT = "fflib-safetensors"
DESCRIPTION_KEY = "fflib"
#: ``torch.jit``, whose functions are not typed.
JIT: Any = torch.jit
#: How many example inputs trace a graph and check it.
EXAMPLE_BATCH = 4


class ExportError(FFLibError):
    """A model that cannot be written in the format asked for."""


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and how its outputs compared with the model's own."""

    path: Path
    format: str
    #: Whether the exported labels equal ``predict``'s on the check inputs (``None``: not
    #: checked, e.g. no onnxruntime installed); the largest score difference.
    labels_equal: bool | None
    max_score_difference: float | None


def description(trained: TrainedModel) -> dict[str, Any]:
    """The checkpoint's description plus what reading the exported graph needs."""
    meta = dict(trained.meta)
    meta["probe"] = trained.probe_name
    meta["preprocessing"] = (
        None if trained.preprocessing is None else trained.preprocessing.to_dict()
    )
    meta["class_names"] = list(trained.classes)
    meta["graph"] = {
        "input": f"float32 (batch, {', '.join(map(str, trained.input_shape))})",
        "input_scale": (
            "model-ready (no preprocessing recorded)"
            if trained.preprocessing is None
            else "[0, 1]: raw integers divided by raw_max, then standardised in the graph"
        ),
        "outputs": ["scores", "label"],
        "score_kind": trained.score_kind,
    }
    return meta


# --- safetensors ------------------------------------------------------------------------


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:  # pragma: no cover - a dependency of fflib
        raise ExportError(
            "safetensors is not installed: pip install safetensors (a dependency of fflib)"
        ) from None
    return safetensors.torch


def write_safetensors(trained: TrainedModel, path: Path) -> None:
    """The model's weights and description (metadata ``fflib``) as a safetensors file."""
    st = _safetensors()
    # Plain contiguous copies: safetensors refuses tensors that share memory.
    weights = {
        name: tensor.detach().cpu().contiguous().clone()
        for name, tensor in trained.model.state_dict().items()
    }
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "format_version": str(FORMAT_VERSION),
        DESCRIPTION_KEY: json.dumps(description(trained), sort_keys=True),
    }
    data: bytes = st.save(weights, metadata=metadata)
    atomic_write(path, lambda file: file.write(data))


def read_safetensors(path: Path) -> tuple[FFModel, dict[str, Any]]:
    """The model and description in a safetensors file written by :func:`write_safetensors`.

    Reading a safetensors file runs no code; the model is rebuilt through the registries.
    """
    st = _safetensors()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
        weights: dict[str, Tensor] = st.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types on damaged files
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    if metadata.get("format") != SAFETENSORS_FORMAT or DESCRIPTION_KEY not in metadata:
        raise CheckpointError(
            f"{path} is a safetensors file without an FFLib description (metadata "
            f"{DESCRIPTION_KEY!r}): it was not written by ff export"
        )
    # the same checks as a checkpoint's: the description's schema, then the weights
    # against the model it names, before that model takes memory
    meta = parse_description(metadata[DESCRIPTION_KEY], path)
    require_components(meta, MODEL_KINDS, path)
    model = build_saved_model(meta, weights, path)
    check_model_state(model, weights, path)
    model.load_state_dict(weights)
    return model, meta


# --- graphs -----------------------------------------------------------------------------


def example_inputs(trained: TrainedModel, batch: int = EXAMPLE_BATCH) -> Tensor:
    """Inputs for tracing and checking: uniform on the ``[0, 1]`` scale, fixed seed."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((batch, *trained.input_shape), generator=generator)
    return x.to(trained.device)


def _graph_module(trained: TrainedModel) -> InferenceGraph:
    if not trained.score_kind:
        raise ExportError(
            f"model {trained.model_name!r} with probe {trained.probe_name!r} gives no "
            "per-label scores to export: choose a probe that scores labels (tryall, classifier)"
        )
    return trained.graph().eval()


def _dynamic_batch() -> Any:
    return ({0: torch.export.Dim("batch", min=1)},)


def _failure(trained: TrainedModel, fmt: str, exc: Exception) -> ExportError:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    return ExportError(
        f"model {trained.model_name!r} (probe {trained.probe_name!r}) cannot be exported to "
        f"{fmt}: {type(exc).__name__}: {reason} (ff --debug export ... shows the whole error)"
    )


@contextlib.contextmanager
def _quiet() -> Any:
    """Exporters print progress and warn about tracing; neither is for the user here."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def write_pt2(trained: TrainedModel, path: Path) -> None:
    """The graph as a ``torch.export`` program (dynamic batch)."""
    graph, example = _graph_module(trained), example_inputs(trained)
    try:
        with _quiet(), torch.no_grad():
            program = torch.export.export(graph, (example,), dynamic_shapes=_dynamic_batch())
    except Exception as exc:
        raise _failure(trained, "pt2", exc) from exc
    extra = {f"{DESCRIPTION_KEY}.json": json.dumps(description(trained), sort_keys=True)}
    atomic_write(path, lambda file: torch.export.save(program, file, extra_files=extra))


def write_torchscript(trained: TrainedModel, path: Path) -> None:
    """The graph traced by ``torch.jit.trace`` (PyTorch marks TorchScript deprecated; it
    remains what LibTorch and older runtimes load)."""
    graph, example = _graph_module(trained), example_inputs(trained)
    try:
        with _quiet(), torch.no_grad():
            traced = JIT.trace(graph, (example,), check_trace=False)
    except Exception as exc:
        raise _failure(trained, "torchscript", exc) from exc
    extra = {f"{DESCRIPTION_KEY}.json": json.dumps(description(trained), sort_keys=True)}
    with warnings.catch_warnings():  # torch.jit.save's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        atomic_write(path, lambda file: torch.jit.save(traced, file, _extra_files=extra))


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError(
            "exporting to onnx needs the onnx packages: pip install 'fflib[export]' "
            "(onnx and onnxscript)"
        ) from None
    return onnx


def write_onnx(trained: TrainedModel, path: Path) -> None:
    """The graph through ``torch.onnx.export(dynamo=True)``, dynamic batch, with the
    description in the model's metadata (key ``fflib``)."""
    onnx = _onnx()
    graph, example = _graph_module(trained), example_inputs(trained)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=["x"],
                output_names=["scores", "label"],
                dynamic_shapes=_dynamic_batch(),
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise _failure(trained, "onnx", exc) from exc
    if program is None:  # pragma: no cover - the dynamo exporter always returns one
        raise ExportError(f"torch.onnx.export returned no program for {trained.model_name!r}")
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = DESCRIPTION_KEY, json.dumps(description(trained), sort_keys=True)
    data: bytes = proto.SerializeToString()
    onnx.checker.check_model(proto)
    atomic_write(path, lambda file: file.write(data))


WRITERS = {
    "safetensors": write_safetensors,
    "onnx": write_onnx,
    "torchscript": write_torchscript,
    "pt2": write_pt2,
}


# --- checking ---------------------------------------------------------------------------


def run_exported(path: Path, fmt: str, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """The exported file's ``(scores, labels)`` for ``x`` (``None``: no runtime for it)."""
    if fmt == "torchscript":
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            module = JIT.load(str(path), map_location="cpu")
        scores, labels = module(x.cpu())
        return scores, labels
    if fmt == "pt2":
        program = torch.export.load(str(path))
        scores, labels = program.module()(x.cpu())
        return scores, labels
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        scores_np, labels_np = session.run(None, {"x": x.cpu().numpy()})
        return torch.from_numpy(scores_np), torch.from_numpy(labels_np)
    return None


def compare(trained: TrainedModel, path: Path, fmt: str, x: Tensor) -> tuple[bool, float] | None:
    """Whether the exported file's labels on ``x`` equal ``predict``'s, and the largest
    difference from ``scores``; ``None`` when it cannot be run here."""
    if fmt == "safetensors":
        from ffcore.inference import load

        reloaded = load(path, device=trained.device, preprocessing=trained.preprocessing)
        scores = reloaded.scores(x)
        labels = reloaded.predict(x)
    else:
        with torch.no_grad():
            outputs = run_exported(path, fmt, x)
        if outputs is None:
            return None
        scores, labels = outputs
    expected = trained.scores(x).cpu()
    equal = bool(torch.equal(labels.cpu().long(), trained.predict(x).cpu()))
    return equal, float((scores.cpu().float() - expected).abs().max())


def export_model(
    trained: TrainedModel,
    fmt: str,
    path: str | os.PathLike[str],
    *,
    check: bool = True,
) -> ExportResult:
    """Write ``trained`` to ``path`` in format ``fmt`` (one of :data:`FORMATS`) and, with
    ``check``, compare the file's outputs with the model's on :func:`example_inputs`."""
    if fmt not in WRITERS:
        from ffcore.errors import InvalidValueError

        raise InvalidValueError("format", fmt, f"one of {', '.join(FORMATS)}")
    target = Path(path)
    if target.is_dir():
        raise ExportError(f"cannot export to {target}: it is a directory")
    try:
        WRITERS[fmt](trained, target)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    if not check:
        return ExportResult(target, fmt, None, None)
    compared = compare(trained, target, fmt, example_inputs(trained, 2 * EXAMPLE_BATCH + 1))
    if compared is None:
        return ExportResult(target, fmt, None, None)
    return ExportResult(target, fmt, compared[0], compared[1])


def read_description(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The FFLib description stored in an exported file of any format."""
    source = Path(path)
    if source.suffix == ".onnx":
        proto = _onnx().load(str(source))
        for entry in proto.metadata_props:
            if entry.key == DESCRIPTION_KEY:
                return dict(json.loads(entry.value))
    elif source.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(source), framework="pt") as file:
            metadata = file.metadata() or {}
        if DESCRIPTION_KEY in metadata:
            return dict(json.loads(metadata[DESCRIPTION_KEY]))
    else:
        extra = {f"{DESCRIPTION_KEY}.json": ""}
        if source.suffix == ".pt2":
            torch.export.load(str(source), extra_files=extra)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                JIT.load(str(source), _extra_files=extra, map_location="cpu")
        if extra[f"{DESCRIPTION_KEY}.json"]:
            return dict(json.loads(extra[f"{DESCRIPTION_KEY}.json"]))
    raise CheckpointError(f"{source} holds no FFLib description")


__all__ = [
    "FORMATS",
    "ExportError",
    "ExportResult",
    "InferenceGraph",
    "export_model",
    "read_description",
    "read_safetensors",
    "write_safetensors",
]
