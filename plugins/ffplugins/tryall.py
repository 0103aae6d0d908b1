"""TryAll: try every one-hot label and pick the one with the best total goodness."""

from __future__ import annotations

from torch import Tensor, nn

from ffcore import hookimpl
from ffcore.errors import FFLibError
from ffcore.hookspecs import Register
from ffcore.interfaces import LabelScorer, Probe


def images_per_block(x: Tensor, num_classes: int, cpu_rows: int) -> int:
    """How many of ``x``'s images to score for every label at once: all of them on
    accelerators; on the CPU, enough for about ``cpu_rows`` rows (images times labels,
    at least one image), whose activations stay in the cache from one operation to the
    next."""
    if x.device.type != "cpu":
        return x.shape[0]
    return max(1, cpu_rows // num_classes)


class TryAll(Probe):
    """Predicts ``argmax_c goodness(x, c)`` using the model's ``goodness_per_label``."""

    def check(self, model: nn.Module) -> None:
        if not isinstance(model, LabelScorer):
            raise FFLibError(
                f"probe 'tryall' needs a model that scores labels (goodness_per_label); "
                f"{type(model).__name__} does not: choose another --probe"
            )

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        self.check(model)
        assert isinstance(model, LabelScorer)
        return model.goodness_per_label(x).argmax(dim=1)


def tryall() -> Probe:
    """Try every label; predict the one whose total goodness is best."""
    return TryAll()


@hookimpl
def fflib_register_probes(register: Register) -> None:
    register("tryall", tryall, aliases=["try-all"])
