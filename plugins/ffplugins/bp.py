"""The backprop baseline: an MLP of the same widths, trained end to end."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffcore.interfaces import Batch, FFModel, NegativeSampler, inputs_of
from ffcore.layers import ACTIVATIONS, choice, flatten_inputs, int_list
from ffcore.optim import make_optimizer


class BackpropMLP(FFModel):
    """Linear + activation layers and a linear read-out, trained with cross-entropy.

    It ignores the negative sampler: it is the backprop twin every FF result is compared
    with (same widths, same data). Predicts with the ``classifier`` probe.
    """

    default_probe = "classifier"

    def __init__(
        self,
        input_features: int,
        num_classes: int,
        widths: Sequence[int],
        *,
        activation: str = "relu",
        optimizer: str = "adam",
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        sizes = int_list("layers", widths, allow_empty=True)
        choice("activation", activation, ACTIVATIONS)
        self.input_features = input_features
        self.num_classes = num_classes
        modules: list[nn.Module] = []
        width_in = input_features
        for width in sizes:
            modules += [nn.Linear(width_in, width), ACTIVATIONS[activation]()]
            width_in = width
        modules.append(nn.Linear(width_in, num_classes))
        self.net = nn.Sequential(*modules)
        self.optimizer = make_optimizer(optimizer, self.net.parameters(), lr)

    def logits(self, x: Tensor | Batch) -> Tensor:
        """Class scores, shape ``(B, num_classes)``."""
        flat = flatten_inputs(inputs_of(x), self.input_features, type(self).__name__)
        logits: Tensor = self.net(flat)
        return logits

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        loss = F.cross_entropy(self.logits(batch.x), batch.y)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        self.optimizer.step()
        return loss.detach()


def bp(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    layers: Sequence[int] = (2000, 2000),
    activation: str = "relu",
    optimizer: str = "adam",
    lr: float = 1e-3,
) -> BackpropMLP:
    """Backprop baseline: an MLP of the same widths trained with cross-entropy."""
    return BackpropMLP(
        math.prod(input_shape),
        num_classes,
        layers,
        activation=activation,
        optimizer=optimizer,
        lr=lr,
    )
