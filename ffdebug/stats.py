"""What ffdebug measures, computed on the tensors' own device and fetched in one copy.

Nothing here talks to TensorBoard. A :class:`Packet` gathers scalars and histograms as
device tensors (no host sync while it fills), then :meth:`Packet.fetch` moves all of them
to the host with a single copy: one sync per traced batch, however many layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore.analysis import sparsity
from ffcore.interfaces import Classifier, FFLayer

#: Equal-width buckets per histogram (TensorBoard re-bins them for display).
HISTOGRAM_BINS = 60
#: Bucket counts of bigger tensors come from a fixed random sample of this many values.
HISTOGRAM_SAMPLE = 1 << 14
#: Samples per forward pass in the epoch-end and ``ff debug`` evaluations.
EVAL_CHUNK = 500


@dataclass(frozen=True)
class Histogram:
    """A histogram in TensorBoard's raw form: right bucket edges and counts."""

    min: float
    max: float
    num: int
    sum: float
    sum_squares: float
    bucket_limits: list[float]
    bucket_counts: list[float]


def _sample_index(numel: int, device: torch.device) -> Tensor:
    """A fixed, sorted random sample of :data:`HISTOGRAM_SAMPLE` positions in ``numel``."""
    key = (numel, str(device))
    index = _SAMPLE_INDEX.get(key)
    if index is None:
        if len(_SAMPLE_INDEX) >= 64:
            _SAMPLE_INDEX.clear()
        generator = torch.Generator().manual_seed(numel)
        drawn = torch.randint(numel, (HISTOGRAM_SAMPLE,), generator=generator)
        index = _SAMPLE_INDEX[key] = drawn.sort().values.to(device)
    return index


_SAMPLE_INDEX: dict[tuple[int, str], Tensor] = {}


def histogram_parts(
    values: Tensor, bins: int = HISTOGRAM_BINS, *, sync_free: bool | None = None
) -> Tensor:
    """``[min, max, sum, sum of squares, count_1 .. count_bins]`` (float32, same device).

    Buckets split ``[min, max]`` evenly (the maximum falls in the last one). Minimum,
    maximum, sum and sum of squares are exact; the bucket counts of a tensor of more than
    :data:`HISTOGRAM_SAMPLE` values come from a fixed random sample of that many of them,
    scaled to the full count. ``sync_free`` (default: off the CPU) counts with a scatter
    that needs no host sync; on the CPU ``torch.histc`` is faster.
    """
    flat = values.detach().reshape(-1).float()
    numel = flat.numel()
    low, high = torch.aminmax(flat)
    head = torch.stack((low, high, flat.sum(), torch.dot(flat, flat)))
    sample = flat[_sample_index(numel, flat.device)] if numel > HISTOGRAM_SAMPLE else flat
    if sync_free is None:
        sync_free = flat.device.type != "cpu"
    if not sync_free:
        lo, hi = float(low), float(high)
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            counts = torch.histc(sample, bins, lo, hi)
        else:
            counts = flat.new_zeros(bins)
    else:
        scale = bins / (high - low).clamp_min(torch.finfo(torch.float32).tiny)
        index = ((sample - low) * scale).long().clamp_(0, bins - 1)
        counts = flat.new_zeros(bins).scatter_add_(0, index, torch.ones_like(sample))
    if sample.numel() != numel:
        counts = counts * (numel / sample.numel())
    return torch.cat((head, counts))


def histogram_from_parts(parts: Sequence[float], num: int) -> Histogram | None:
    """The :class:`Histogram` of :func:`histogram_parts`; ``None`` if it holds NaN or inf."""
    low, high, total, squares = parts[:4]
    counts = list(parts[4:])
    if not all(math.isfinite(v) for v in (low, high, total, squares)):
        return None
    if high <= low:  # a constant tensor: one bucket
        return Histogram(low, high, num, total, squares, [high], [float(num)])
    width = (high - low) / len(counts)
    limits = [low + width * (i + 1) for i in range(len(counts) - 1)] + [high]
    return Histogram(low, high, num, total, squares, limits, counts)


@dataclass
class Fetched:
    """A packet's values on the host."""

    scalars: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)


class Packet:
    """Scalars and histograms gathered as device tensors, fetched to the host at once."""

    def __init__(self) -> None:
        self._parts: list[Tensor] = []
        # (kind, tag, offset, size, numel) for each device value
        self._entries: list[tuple[str, str, int, int, int]] = []
        self._size = 0
        self._host: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._entries) + len(self._host)

    def _add(self, kind: str, tag: str, part: Tensor, numel: int) -> None:
        self._entries.append((kind, tag, self._size, part.numel(), numel))
        self._parts.append(part)
        self._size += part.numel()

    def scalar(self, tag: str, value: Tensor | float) -> None:
        """Record a scalar (a 0-d or one-element tensor, or a number)."""
        if isinstance(value, Tensor):
            self._add("scalar", tag, value.detach().reshape(1).float(), 1)
        else:
            self._host[tag] = float(value)

    def scalars(self, tags: Sequence[str], values: Tensor) -> None:
        """Record ``len(tags)`` scalars held in one tensor, in order."""
        flat = values.detach().reshape(-1).float()
        if flat.numel() != len(tags):
            raise ValueError(f"{len(tags)} tags for {flat.numel()} values")
        for index, tag in enumerate(tags):
            self._entries.append(("scalar", tag, self._size + index, 1, 1))
        self._parts.append(flat)
        self._size += flat.numel()

    def histogram(self, tag: str, values: Tensor) -> None:
        """Record the histogram of every element of ``values`` (an empty tensor is skipped)."""
        if values.numel():
            self._add("histogram", tag, histogram_parts(values), values.numel())

    def fetch(self) -> Fetched:
        """Every recorded value on the host: one device-to-host copy for all of them."""
        fetched = Fetched(scalars=dict(self._host))
        if self._parts:
            device = self._parts[0].device
            flat = torch.cat([p.to(device) for p in self._parts]).tolist()
            for kind, tag, offset, size, numel in self._entries:
                if kind == "scalar":
                    fetched.scalars[tag] = flat[offset]
                else:
                    histogram = histogram_from_parts(flat[offset : offset + size], numel)
                    if histogram is not None:
                        fetched.histograms[tag] = histogram
        return fetched


def signed(layer: nn.Module) -> float:
    """``1.0`` if the layer pushes positive goodness up, ``-1.0`` if down."""
    return 1.0 if getattr(layer, "maximise", True) else -1.0


def pairs_ordered(score_pos: Tensor, score_neg: Tensor) -> Tensor:
    """Fraction of (positive, negative) pairs whose signed goodness is in the right order.

    With ``k`` negatives per positive (sample-major, as negative samplers build them) each
    positive is compared with its own ``k`` negatives; otherwise with every negative.
    Ties count as wrong.
    """
    pos, neg = score_pos.detach().float(), score_neg.detach().float()
    if len(pos) and len(neg) % len(pos) == 0:
        k = len(neg) // len(pos)
        return (pos.repeat_interleave(k) > neg).float().mean()
    below = torch.searchsorted(neg.sort().values, pos, right=False)  # negatives < each pos
    return below.sum().float() / (len(pos) * len(neg))


def dead_fraction(h_pos: Tensor, h_neg: Tensor) -> Tensor:
    """Fraction of units that stayed at exactly zero for every positive and negative sample."""
    fired = h_pos.reshape(h_pos.shape[0], -1).ne(0).any(dim=0)
    if h_neg.numel():
        fired = fired | h_neg.reshape(h_neg.shape[0], -1).ne(0).any(dim=0)
    return 1.0 - fired.float().mean()


def parameter_tags(module: nn.Module) -> list[tuple[str, Tensor]]:
    """A layer's parameters by short name: ``weight``, ``bias`` (``fw``, ``bw`` for FFRNN)."""
    named = list(module.named_parameters())
    short = [name.rsplit(".", 1)[-1] for name, _ in named]
    if len(set(short)) != len(short):
        short = [name.replace(".", "_") for name, _ in named]
    return [(tag, parameter) for tag, (_, parameter) in zip(short, named, strict=True)]


def add_parameters(packet: Packet, prefix: str, named: Sequence[tuple[str, Tensor]]) -> None:
    """Histogram and L2 norm of each parameter: ``{prefix}/{name}``, ``{prefix}/{name}_norm``."""
    for name, parameter in named:
        packet.histogram(f"{prefix}/{name}", parameter)
        packet.scalar(f"{prefix}/{name}_norm", torch.linalg.vector_norm(parameter.detach()))


def add_layer(
    packet: Packet,
    prefix: str,
    layer: nn.Module,
    h_pos: Tensor,
    h_neg: Tensor,
    g_pos: Tensor,
    g_neg: Tensor,
    loss: Tensor,
) -> None:
    """Every per-layer tag for one step of ``layer`` (see the README's table)."""
    sign = signed(layer)
    pos, neg = g_pos.detach().float(), g_neg.detach().float()
    packet.histogram(f"{prefix}/activations_pos", h_pos)
    packet.histogram(f"{prefix}/activations_neg", h_neg)
    packet.histogram(f"{prefix}/goodness_pos", pos)
    packet.histogram(f"{prefix}/goodness_neg", neg)
    pos_mean, neg_mean = pos.mean(), neg.mean()
    packet.scalar(f"{prefix}/goodness_pos_mean", pos_mean)
    packet.scalar(f"{prefix}/goodness_neg_mean", neg_mean)
    packet.scalar(f"{prefix}/separation", sign * (pos_mean - neg_mean))
    packet.scalar(f"{prefix}/pairs_ordered", pairs_ordered(sign * pos, sign * neg))
    packet.scalar(f"{prefix}/loss", loss.detach())
    if isinstance(layer, FFLayer):
        packet.scalar(f"{prefix}/lr", layer.lr)
        packet.scalar(f"{prefix}/threshold", layer.threshold)
    flat = h_pos.detach().reshape(h_pos.shape[0], -1)
    if flat.shape[1] >= 2:
        packet.scalar(f"{prefix}/hoyer", sparsity(flat, "hoyer").mean())
    packet.scalar(f"{prefix}/dead_fraction", dead_fraction(h_pos.detach(), h_neg.detach()))
    add_parameters(packet, prefix, parameter_tags(layer))


def frame_values(layer: nn.Module, g_pos: Tensor, g_neg: Tensor, loss: Tensor) -> Tensor:
    """``[goodness_pos_mean, goodness_neg_mean, separation, loss]`` of one frame (device)."""
    pos_mean, neg_mean = g_pos.detach().float().mean(), g_neg.detach().float().mean()
    separation = signed(layer) * (pos_mean - neg_mean)
    return torch.stack((pos_mean, neg_mean, separation, loss.detach().float().reshape(())))


FRAME_TAGS = ("goodness_pos_mean", "goodness_neg_mean", "separation", "loss")


def other_parameters(model: nn.Module) -> list[tuple[str, Tensor]]:
    """The model's parameters that belong to no FF layer (FF+C's classifier, bp's MLP)."""
    in_layers = {id(p) for m in model.modules() if isinstance(m, FFLayer) for p in m.parameters()}
    return [(name, p) for name, p in model.named_parameters() if id(p) not in in_layers]


@torch.no_grad()
def layer_accuracies(model: nn.Module, x: Tensor, y: Tensor) -> Tensor | None:
    """What each layer alone would score (TryAll on its goodness): ``(num_layers,)``.

    ``None`` if the model has no ``layer_goodness_per_label`` (as FFNet and FF+C have).
    """
    per_label = getattr(model, "layer_goodness_per_label", None)
    if not callable(per_label) or len(x) == 0:
        return None
    correct: Tensor | None = None
    for start in range(0, len(x), EVAL_CHUNK):
        scores = per_label(x[start : start + EVAL_CHUNK])
        hits = (scores.argmax(dim=2) == y[start : start + EVAL_CHUNK]).sum(dim=1)
        correct = hits if correct is None else correct + hits
    assert correct is not None
    return correct.float() / len(x)


@torch.no_grad()
def classifier_metrics(model: nn.Module, x: Tensor, y: Tensor) -> Tensor | None:
    """``[cross-entropy, accuracy]`` of a model's own classifier (FF+C, bp), else ``None``."""
    if not isinstance(model, Classifier) or len(x) == 0:
        return None
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(x), EVAL_CHUNK):
        logits = model.logits(x[start : start + EVAL_CHUNK]).float()
        target = y[start : start + EVAL_CHUNK]
        loss_sum = loss_sum + F.cross_entropy(logits, target, reduction="sum")
        correct = correct + (logits.argmax(dim=1) == target).sum()
    return torch.stack((loss_sum, correct.float())) / len(x)
