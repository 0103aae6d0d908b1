"""Analysis of trained networks: sparsity measures and per-layer weight statistics.

Sparsity is 1 for a one-hot vector and 0 for a constant one, for every measure:

- ``hoyer``: ``(sqrt(n) - ‖x‖₁/‖x‖₂) / (sqrt(n) - 1)`` (Hoyer 2004);
- ``l1-entropy``: 1 minus the normalised entropy of ``|x| / ‖x‖₁``;
- ``l2-entropy``: 1 minus the normalised entropy of ``x² / ‖x‖₂²``;
- ``gini``: the Gini index of ``|x|`` (Hurley & Rickard 2009), rescaled by ``n / (n - 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ffcore.choices import SPARSITY_KINDS as SPARSITY_KINDS
from ffcore.errors import InvalidValueError

_EPS = 1e-12


def _normalised_entropy_sparsity(p: Tensor, n: int) -> Tensor:
    entropy = -(p * torch.log(p.clamp_min(_EPS))).sum(dim=-1)
    return 1.0 - entropy / math.log(n)


def sparsity(x: Tensor, kind: str = "hoyer") -> Tensor:
    """Sparsity of ``x`` along its last dimension: shape ``x.shape[:-1]``, values in [0, 1].

    An all-zero vector counts as fully sparse (1).
    """
    if kind not in SPARSITY_KINDS:
        raise InvalidValueError("sparsity kind", kind, f"one of {', '.join(SPARSITY_KINDS)}")
    n = x.shape[-1]
    if n < 2:
        raise InvalidValueError("vector length", n, "at least 2 for a sparsity measure")
    a = x.detach().abs().float()
    l1 = a.sum(dim=-1)
    zero = l1 <= _EPS
    if kind == "hoyer":
        l2 = a.square().sum(dim=-1).sqrt()
        root = math.sqrt(n)
        value = (root - l1 / l2.clamp_min(_EPS)) / (root - 1)
    elif kind == "l1-entropy":
        value = _normalised_entropy_sparsity(a / l1.clamp_min(_EPS).unsqueeze(-1), n)
    elif kind == "l2-entropy":
        squares = a.square()
        total = squares.sum(dim=-1, keepdim=True).clamp_min(_EPS)
        value = _normalised_entropy_sparsity(squares / total, n)
    else:  # gini
        ordered, _ = a.sort(dim=-1)
        k = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
        weights = (n - k + 0.5) / n
        gini = 1.0 - 2.0 * (ordered / l1.clamp_min(_EPS).unsqueeze(-1) * weights).sum(dim=-1)
        value = gini * n / (n - 1)  # rescaled so that one-hot gives 1, not 1 - 1/n
    return torch.where(zero, torch.ones_like(value), value).clamp(0.0, 1.0)


def weight_matrices(model: nn.Module) -> dict[str, Tensor]:
    """Every weight of two or more dimensions (biases excluded), by parameter name."""
    return {name: p for name, p in model.named_parameters() if p.dim() >= 2}


def weight_sparsity(model: nn.Module, kind: str = "hoyer") -> dict[str, float]:
    """Sparsity of each weight matrix, flattened (FFLib 0.3.0's ``sparsity(type)``)."""
    return {name: float(sparsity(w.flatten(), kind)) for name, w in weight_matrices(model).items()}


def weight_stats(model: nn.Module) -> dict[str, dict[str, float]]:
    """``min``, ``max``, ``mean``, ``std`` and ``norm`` of every parameter, by name."""
    stats: dict[str, dict[str, float]] = {}
    for name, parameter in model.named_parameters():
        values = parameter.detach().float()
        stats[name] = {
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
            "std": float(values.std()) if values.numel() > 1 else 0.0,
            "norm": float(values.norm()),
        }
    return stats
