"""``ff debug CHECKPOINT``: trace a saved model on a data set, without training it.

It writes the per-layer histograms and scalars a traced training batch gets (on a sample
of the data, with negatives from the model's own sampler), a per-class mean-goodness heat
map (layers × labels), each layer's accuracy alone and an embedding projector of every
layer's activations, labelled by class. The ``ff debug`` command itself is
:mod:`ffdebug.command` (it imports this module when it runs).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ffcore.checkpoint import load_checkpoint
from ffcore.devices import resolve_device
from ffcore.errors import FFLibError, InvalidValueError
from ffcore.interfaces import Batch, DataSplits, FFLayer, FFModel, NegativeSampler, Probe, Split
from ffcore.registry import build
from ffcore.run_data import load_saved_data
from ffdebug import SPLITS
from ffdebug.errors import TracingError
from ffdebug.stats import (
    EVAL_CHUNK,
    Packet,
    add_layer,
    add_parameters,
    classifier_metrics,
    layer_accuracies,
    other_parameters,
    parameter_tags,
)

#: Titles of the two per-class heat maps.
PER_CLASS_TITLE = "Mean goodness per class, true label (each layer on its own scale)"
MARGIN_TITLE = "Mean margin per class: goodness of the true label minus the best wrong one"
#: The embedding projector's sprite sheet may be at most this many pixels wide.
MAX_SPRITE_SIDE = 8192


@dataclass(frozen=True)
class DebugReport:
    """What :func:`trace_checkpoint` wrote."""

    logdir: Path
    model: str
    epoch: int | None
    dataset: str
    split: str
    samples: int
    layers: int
    embeddings: int
    images: tuple[str, ...]


def load_split(
    meta: dict[str, Any],
    *,
    dataset: str | None,
    data_root: str | None,
    download: bool | None,
    split: str,
    path: str | os.PathLike[str] = "the checkpoint",
) -> tuple[DataSplits, Split]:
    """The data set the checkpoint names (or ``dataset``) and its ``split``."""
    if split not in SPLITS:
        raise InvalidValueError("split", split, f"one of {', '.join(SPLITS)}")
    data = load_saved_data(meta, dataset=dataset, data_root=data_root, download=download, path=path)
    chosen = {"test": data.test, "val": data.val, "train": data.train}[split]
    if chosen is None or len(chosen) == 0:
        raise TracingError(f"dataset {data.name!r} has no {split} split (try --split test)")
    return data, chosen


def ff_layers(model: nn.Module) -> list[FFLayer]:
    """The model's FF layers in order (``model.layers``), or none if it has no such stack."""
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.ModuleList) and all(isinstance(m, FFLayer) for m in layers):
        return [m for m in layers if isinstance(m, FFLayer)]
    return []


@torch.no_grad()
def layer_activations(model: nn.Module, count: int, x: Tensor, y: Tensor) -> list[Tensor] | None:
    """``model(x, y)`` as a list of ``count`` activation tensors, or ``None`` if it is not."""
    try:
        result = model(x, y)
    except (NotImplementedError, TypeError):
        return None
    if not isinstance(result, list | tuple) or len(result) != count:
        return None
    if not all(isinstance(h, Tensor) and h.shape[0] == x.shape[0] for h in result):
        return None
    return list(result)


def per_class_mean(values: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """``(rows, num_classes)``: the mean of ``values`` ``(rows, N)`` over each class' samples.

    NaN where a class has no sample.
    """
    values = values.float()
    sums = values.new_zeros(values.shape[0], num_classes).index_add_(1, y, values)
    counts = torch.bincount(y, minlength=num_classes).to(values)
    return sums / counts


@torch.no_grad()
def label_margins(model: nn.Module, x: Tensor, y: Tensor) -> Tensor | None:
    """``(num_layers, N)``: each layer's goodness with the true label minus the best wrong one."""
    per_label = getattr(model, "layer_goodness_per_label", None)
    if not callable(per_label):
        return None
    parts: list[Tensor] = []
    for start in range(0, len(x), EVAL_CHUNK):
        scores = per_label(x[start : start + EVAL_CHUNK]).float()  # (L, b, C)
        target = y[start : start + EVAL_CHUNK].view(1, -1, 1).expand(scores.shape[0], -1, 1)
        true = scores.gather(2, target).squeeze(2)
        wrong = scores.scatter(2, target, float("-inf")).amax(dim=2)
        parts.append(true - wrong)
    return torch.cat(parts, dim=1)


def sprite_images(x: Tensor, input_shape: Sequence[int]) -> Tensor | None:
    """Inputs as ``(N, C, H, W)`` thumbnails in [0, 1] if they are images, else ``None``."""
    shape = tuple(input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        return None
    if math.ceil(math.sqrt(len(x))) * max(shape[1:]) > MAX_SPRITE_SIDE:
        return None
    images = x.detach().float().reshape(len(x), *shape)
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    return ((images - low) / (high - low).clamp_min(1e-12)).cpu()


def _table(classes: Sequence[str], values: Tensor) -> str:
    from ffdebug.events import markdown_table

    rows = [[f"layer{i}", *row] for i, row in enumerate(values.tolist())]
    return markdown_table(("", *classes), rows)


@dataclass
class _Sample:
    """The traced sample and what the model made of it."""

    x: Tensor
    y: Tensor
    classes: list[str]
    acts_pos: list[Tensor] | None = None
    scores: Tensor | None = None  # (layers, N) signed goodness with the true labels
    margins: Tensor | None = None  # (layers, N) true label's goodness minus best wrong one


@torch.no_grad()
def _measure(
    packet: Packet,
    model: FFModel,
    sample: _Sample,
    sampler: NegativeSampler,
    probe: Probe | None,
    num_classes: int,
) -> None:
    """Every scalar and histogram of the sample into ``packet`` (and ``sample``'s fields)."""
    x, y = sample.x, sample.y
    layers = ff_layers(model)
    acts_pos = layer_activations(model, len(layers), x, y) if layers else None
    acts_neg = None
    if acts_pos is not None:
        negative = sampler(Batch(x, y), model)
        acts_neg = layer_activations(model, len(layers), negative.x, negative.y)
    if acts_pos is not None and acts_neg is not None:
        scores: list[Tensor] = []
        for index, (layer, h_pos, h_neg) in enumerate(zip(layers, acts_pos, acts_neg, strict=True)):
            g_pos, g_neg = layer.goodness(h_pos), layer.goodness(h_neg)
            loss = layer.loss(g_pos, g_neg)
            add_layer(packet, f"layer{index}", layer, h_pos, h_neg, g_pos, g_neg, loss)
            scores.append(layer.score(h_pos))
        sample.acts_pos, sample.scores = acts_pos, torch.stack(scores)
    else:  # no per-layer activations to read: weights only
        for index, layer in enumerate(layers):
            add_parameters(packet, f"layer{index}", parameter_tags(layer))
    add_parameters(packet, "model", other_parameters(model))
    accuracies = layer_accuracies(model, x, y)
    if accuracies is not None:
        packet.scalars([f"debug/layer{i}_acc" for i in range(len(accuracies))], accuracies)
    if probe is not None:
        correct = torch.zeros((), device=x.device)
        for start in range(0, len(x), EVAL_CHUNK):
            predicted = probe.predict(model, x[start : start + EVAL_CHUNK])
            correct = correct + (predicted == y[start : start + EVAL_CHUNK]).sum()
        packet.scalar("debug/acc", correct.float() / len(x))
    classifier = classifier_metrics(model, x, y)
    if classifier is not None:
        packet.scalars(["classifier/loss", "classifier/acc"], classifier)
    sample.margins = label_margins(model, x, y)


def trace_checkpoint(
    checkpoint: str | os.PathLike[str],
    logdir: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    data_root: str | None = None,
    download: bool | None = None,
    split: str = "test",
    samples: int = 500,
    negatives: str | None = None,
    device: str = "auto",
    seed: int = 0,
    step: int = 0,
) -> DebugReport:
    """Trace the model saved in ``checkpoint`` on ``samples`` samples of a data split."""
    from ffdebug.events import EventWriter, markdown_table

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidValueError("samples", samples, "a positive integer")
    target = resolve_device(device)
    loaded = load_checkpoint(checkpoint, map_location=target)
    model, meta = loaded.model, loaded.meta
    model_meta: dict[str, Any] = meta.get("model", {})
    data, chosen = load_split(
        meta,
        dataset=dataset,
        data_root=data_root,
        download=download,
        split=split,
        path=checkpoint,
    )
    order = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))[:samples]
    classes = list(data.class_names) or [str(c) for c in range(data.num_classes)]
    sample = _Sample(chosen.x[order].to(target), chosen.y[order].to(target), classes)
    count = len(sample.x)
    saved_negatives = meta.get("negatives")
    negatives_name = negatives or saved_negatives or "random"
    negatives_options: dict[str, Any] = {}
    if negatives_name == saved_negatives:
        negatives_options = dict((meta.get("config") or {}).get("negatives_options") or {})
    sampler = build("negatives", negatives_name, NegativeSampler, **negatives_options)
    model.eval()
    torch.manual_seed(seed)  # the negatives

    images: list[str] = []
    events = EventWriter(logdir)
    try:
        packet = Packet()
        _measure(packet, model, sample, sampler, _probe(meta, model), data.num_classes)
        events.write(packet.fetch(), step)
        maps = (
            ("goodness/per_class", sample.scores, False, PER_CLASS_TITLE),
            ("goodness/margin_per_class", sample.margins, True, MARGIN_TITLE),
        )
        for tag, values, diverging, title in maps:
            if values is None:
                continue
            means = per_class_mean(values, sample.y, data.num_classes).cpu()
            layer_names = [f"layer{i}" for i in range(len(means))]
            events.heat_map(
                tag,
                means,
                rows=layer_names,
                columns=classes,
                title=title,
                diverging=diverging,
                step=step,
            )
            events.text(tag, _table(classes, means), step)
            images.append(tag)
        acts = sample.acts_pos or []
        if acts:
            labels = [classes[c] for c in sample.y.tolist()]
            thumbnails = sprite_images(sample.x, data.input_shape)
            for index, h in enumerate(acts):
                events.embedding(f"layer{index}", h.reshape(count, -1), labels, thumbnails, step)
        rows: list[tuple[str, object]] = [
            ("checkpoint", str(checkpoint)),
            ("model", model_meta.get("name")),
            ("model options", json.dumps(model_meta.get("options", {}), sort_keys=True)),
            ("epoch", meta.get("epoch")),
            ("dataset", data.name),
            ("split", f"{split} ({count} of {len(chosen)} samples, seed {seed})"),
            ("negatives", negatives_name),
            ("metrics", json.dumps(meta.get("metrics", {}), sort_keys=True)),
            ("components", json.dumps(meta.get("components", {}), sort_keys=True)),
        ]
        events.text("run/checkpoint", markdown_table(("", "value"), rows), step)
        config = meta.get("config")
        if isinstance(config, dict):
            table = markdown_table(("setting", "value"), list(config.items()))
            events.text("run/config", table, step)
    finally:
        events.close()
    return DebugReport(
        logdir=events.logdir,
        model=str(model_meta.get("name")),
        epoch=meta.get("epoch"),
        dataset=data.name,
        split=split,
        samples=count,
        layers=len(acts),
        embeddings=len(acts),
        images=tuple(images),
    )


def _probe(meta: dict[str, Any], model: FFModel) -> Probe | None:
    """The probe the model was trained with, if it can read the model."""
    name = meta.get("probe") or model.default_probe
    try:
        probe = build("probe", str(name), Probe)
        probe.check(model)
    except FFLibError:
        return None
    return probe
