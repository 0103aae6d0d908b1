"""Which epoch's weights a run keeps (``--keep best|last``) and when it stops early
(``--early-stop N``).

The trainer tells an :class:`EpochSelection` each epoch's metrics and asks it whether to
stop; at the end it puts the kept weights into the model, so the test accuracy reported
and the checkpoint's model are the kept epoch's. A checkpoint stores the kept weights as
the model (what ``ff eval``, ``ff predict`` and ``ffcore.load`` read) and, when training
has moved past them, the current weights as the training state, with the counters: so a
resumed run keeps the best weights and the patience it had used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ffcore.errors import InvalidValueError

KEEP_CHOICES = ("best", "last")

Weights = dict[str, Tensor]


def copy_weights(model: nn.Module) -> Weights:
    """A detached CPU copy of ``model``'s state dict."""
    return {
        name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
    }


@dataclass
class EpochSelection:
    """Keeps the best epoch's weights (by validation accuracy) or the last's, and counts
    the epochs without improvement for early stopping.

    The kept epoch is the last one with the highest validation accuracy seen; early
    stopping stops after ``patience`` epochs in a row without a strictly higher one
    (``patience`` 0: never).
    """

    keep: str = "last"
    patience: int = 0
    #: 1-based epoch of the best validation accuracy so far (0: none yet).
    best_epoch: int = 0
    best_val_acc: float = -math.inf
    #: Epochs since the validation accuracy last rose.
    since_best: int = 0
    #: A copy of the best epoch's weights while training may move past them.
    best_weights: Weights | None = None
    #: After :meth:`finish`: the last epoch's weights, when they are not the kept ones
    #: (what training would continue from).
    last_weights: Weights | None = None

    @classmethod
    def for_run(cls, keep: str | None, early_stop: int, *, has_validation: bool) -> EpochSelection:
        """The selection a run's settings ask for: ``keep`` ``None`` means best when there
        is a validation split, else last."""
        if keep is None:
            keep = "best" if has_validation else "last"
        if keep not in KEEP_CHOICES:
            raise InvalidValueError("keep", keep, "'best' or 'last'")
        if keep == "best" and not has_validation:
            raise InvalidValueError(
                "keep", keep, "'last': there is no validation split to pick the best by"
            )
        if early_stop and not has_validation:
            raise InvalidValueError(
                "early_stop", early_stop, "0: early stopping needs a validation split"
            )
        return cls(keep=keep, patience=early_stop)

    @property
    def stopped(self) -> bool:
        """Whether the patience has run out."""
        return self.patience > 0 and self.since_best >= self.patience

    def epoch_end(self, epoch: int, metrics: Mapping[str, float], model: nn.Module) -> None:
        """Record 1-based ``epoch``'s ``metrics``; copy the weights if they are the best."""
        val_acc = metrics.get("val_acc")
        if val_acc is None:
            return
        if val_acc > self.best_val_acc:
            self.since_best = 0
        else:
            self.since_best += 1
        if val_acc >= self.best_val_acc:
            self.best_val_acc = float(val_acc)
            self.best_epoch = epoch
            if self.keep == "best":
                self.best_weights = copy_weights(model)

    def kept_epoch(self, epochs_done: int) -> int:
        """The 1-based epoch whose weights the run keeps, after ``epochs_done`` epochs."""
        if self.keep == "best" and self.best_epoch:
            return self.best_epoch
        return epochs_done

    def holds_best(self, epoch: int, batch: int) -> bool:
        """Whether a model that completed ``epoch`` epochs and ``batch`` batches more still
        holds the best weights (none taken since they were copied)."""
        return batch == 0 and epoch == self.best_epoch

    def finish(self, model: nn.Module, epoch: int) -> None:
        """Put the kept weights into ``model`` at the end of training (after ``epoch``
        epochs), keeping the last ones aside when they differ."""
        if self.best_weights is None:
            return
        if not self.holds_best(epoch, 0):
            self.last_weights = copy_weights(model)
            model.load_state_dict(self.best_weights)
        self.best_weights = None

    def restart(self, model: nn.Module) -> None:
        """Undo :meth:`finish` before training on: the last weights go back into ``model``
        and the kept ones are held aside again."""
        if self.keep == "best" and self.best_epoch and self.best_weights is None:
            self.best_weights = copy_weights(model)
        if self.last_weights is not None:
            model.load_state_dict(self.last_weights)
            self.last_weights = None

    def saved_weights(
        self, model: nn.Module, epoch: int, batch: int
    ) -> tuple[Mapping[str, Tensor], Mapping[str, Tensor] | None]:
        """``(kept, training)``: the weights a checkpoint stores as the model's, and those
        training continues from when they differ (else ``None``)."""
        current = model.state_dict()
        if self.best_weights is None:
            return current, self.last_weights
        if self.holds_best(epoch, batch):
            return current, None
        return self.best_weights, current

    def state_dict(self) -> dict[str, Any]:
        """The counters a resumed run needs (the weights travel separately)."""
        return {
            "keep": self.keep,
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val_acc,
            "since_best": self.since_best,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s counters (``keep`` and ``patience`` come from the
        run's settings)."""
        self.best_epoch = int(state.get("best_epoch", 0))
        self.best_val_acc = float(state.get("best_val_acc", -math.inf))
        self.since_best = int(state.get("since_best", 0))
