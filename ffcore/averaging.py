"""Weight averaging (``--ema-decay``): the run evaluates and keeps an exponential moving
average of its weights instead of the last step's.

Adam's last steps leave the weights wherever the last few batches pushed them; their
average over the last thousand or so steps sits nearer the middle of that noise and
usually generalises better (Polyak averaging). Every optimizer of the model gets a step
hook: after each of its steps its parameters' averages move towards them, so an average
moves only while its part of the model trains. That holds for any model and any way of
training it: a layer that trains in its own phase (FF+C's FF layers, then its read-out),
a pipeline rank that steps only its own layers, data-parallel steps taken late.

Between epochs the model holds the averages: validation, the kept epoch, epoch-end
plugins, checkpoints and the test see them, while the raw weights training continues from
wait aside (:attr:`WeightAverage.training`) and go back in at the next epoch's start. A
part of the model that did not step for a whole epoch has finished training: from then on
it keeps its average, so what trains on top of it (FF+C's read-out) reads the features the
model is evaluated with.

The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` steps, so that a
short run is not dominated by its initial weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ffcore.validate import number

#: ``(parameter name, parameter)`` of one optimizer.
NamedParameters = list[tuple[str, nn.Parameter]]


def check_decay(decay: float) -> float:
    """``decay`` as a float, or fail unless it lies in ``[0, 1)`` (0: no averaging)."""
    return number("ema_decay", decay, low=0, high=1, high_open=True, expected="a number in [0, 1)")


def warmed_decay(decay: float, steps: int) -> float:
    """The decay after ``steps`` earlier updates: ``min(decay, (1 + steps) / (10 + steps))``
    (the first update, ``steps`` 0, copies the weights)."""
    return min(decay, (1 + steps) / (10 + steps))


def optimizer_parameters(
    model: nn.Module, optimizers: list[torch.optim.Optimizer]
) -> list[NamedParameters]:
    """Each optimizer's parameters with their names in ``model`` (those it does not name,
    e.g. a buffer an optimizer was handed, are left out)."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return [
        [
            (names[id(parameter)], parameter)
            for group in optimizer.param_groups
            for parameter in group["params"]
            if id(parameter) in names
        ]
        for optimizer in optimizers
    ]


class WeightAverage:
    """An exponential moving average of the weights ``optimizers`` train in ``model``.

    :meth:`epoch_end` puts the averages into the model and keeps the raw weights aside;
    :meth:`epoch_start` puts them back. :meth:`state_dict` is what a checkpoint stores to
    resume exactly.
    """

    def __init__(
        self, model: nn.Module, optimizers: list[torch.optim.Optimizer], decay: float
    ) -> None:
        self.decay = check_decay(decay)
        self.parts = optimizer_parameters(model, optimizers)
        #: The average of every trained parameter, by name.
        self.averages: dict[str, Tensor] = {
            name: parameter.detach().clone() for part in self.parts for name, parameter in part
        }
        #: Steps each optimizer has taken (its averages' update count).
        self.updates = [0] * len(self.parts)
        #: Whether each optimizer stepped in the current epoch.
        self.stepped = [False] * len(self.parts)
        #: The raw weights training continues from, while the model holds the averages.
        self.training: dict[str, Tensor] | None = None
        for index, optimizer in enumerate(optimizers):
            optimizer.register_step_post_hook(self._after_step(index))

    def _after_step(self, index: int) -> Any:
        def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.update(index)

        return hook

    @torch.no_grad()
    def update(self, index: int) -> None:
        """Move optimizer ``index``'s averages towards its parameters (after its step)."""
        part = self.parts[index]
        if part:
            steps = self.updates[index]
            # the first step starts the average from the weights it reached: whatever set
            # them before (a resumed file, a plugin) is not averaged in
            weight = 1.0 - warmed_decay(self.decay, steps) if steps else 1.0
            averages = [self.averages[name] for name, _ in part]
            torch._foreach_lerp_(averages, [parameter.detach() for _, parameter in part], weight)
        self.updates[index] += 1
        self.stepped[index] = True

    def finished(self, index: int) -> bool:
        """Whether optimizer ``index`` trained, but not in the epoch that just ended."""
        return self.updates[index] > 0 and not self.stepped[index]

    @torch.no_grad()
    def epoch_end(self) -> None:
        """Put the averages into the model and keep its raw weights aside; a part that
        finished training keeps its average as its raw weights too."""
        if self.training is not None:
            return
        training: dict[str, Tensor] = {}
        for index, part in enumerate(self.parts):
            if not self.updates[index]:
                continue  # not trained yet: no average to hold
            finished = self.finished(index)
            for name, parameter in part:
                average = self.averages[name]
                training[name] = average.clone() if finished else parameter.detach().clone()
                parameter.copy_(average)
        self.training = training
        self.stepped = [False] * len(self.parts)

    @torch.no_grad()
    def epoch_start(self) -> None:
        """Put the raw weights back into the model, for training to go on from."""
        if self.training is None:
            return
        for part in self.parts:
            for name, parameter in part:
                if name in self.training:
                    parameter.copy_(self.training[name])
        self.training = None

    def state_dict(self) -> dict[str, Any]:
        """The averages, the raw weights of the trained parts (while the model holds the
        averages) and the counters, as CPU tensors and plain values."""
        return {
            "averages": {name: t.detach().cpu() for name, t in self.averages.items()},
            "training": (
                None
                if self.training is None
                else {name: t.detach().cpu() for name, t in self.training.items()}
            ),
            "updates": list(self.updates),
            "stepped": list(self.stepped),
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (checked first: see
        :func:`ffcore.checkpoint_tensors.check_average_state`)."""
        for name, average in self.averages.items():
            average.copy_(state["averages"][name])
        training = state.get("training")
        self.training = (
            None
            if training is None
            else {
                name: saved.to(self.averages[name].device, copy=True)
                for name, saved in training.items()
            }
        )
        self.updates = [int(n) for n in state["updates"]]
        self.stepped = [bool(s) for s in state["stepped"]]
