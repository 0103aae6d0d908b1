"""The hooks a plugin can implement (pluggy project ``fflib``).

A plugin is a module (or object) with functions marked ``@ffcore.hookimpl`` whose names
are among those below. Registration hooks add components; lifecycle hooks observe
training. A hook implementation may take any subset of the arguments, by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import click
import pluggy

if TYPE_CHECKING:
    from torch import Tensor

    from ffcore.interfaces.layer import FFLayer
    from ffcore.settings import Options
    from ffcore.training import TrainingRun

PROJECT_NAME = "fflib"
#: The setuptools entry-point group plugins are declared under.
ENTRY_POINT_GROUP = "fflib"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The ``register`` callable a registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any] | str,
        *,
        description: str | None = None,
        aliases: Iterable[str] = (),
    ) -> None:
        """Register ``factory`` under ``name`` (description: the docstring's first line).

        ``factory`` may be a reference, ``"package.module:function"``: with a
        ``description``, the module is imported only when the component is first built,
        so ``ff list-plugins``, ``ff --help`` and shell completion stay fast.
        """
        ...


# --- registration -------------------------------------------------------------------


@hookspec
def fflib_register_layers(register: Register) -> None:
    """Register FF layer factories (``nn.Module`` subclasses of ``FFLayer``)."""


@hookspec
def fflib_register_models(register: Register) -> None:
    """Register model factories ``(input_shape, num_classes, **options) -> FFModel``."""


@hookspec
def fflib_register_goodness(register: Register) -> None:
    """Register goodness factories returning a ``GoodnessFunction``."""


@hookspec
def fflib_register_losses(register: Register) -> None:
    """Register loss factories returning an ``FFLoss``."""


@hookspec
def fflib_register_probes(register: Register) -> None:
    """Register probe factories returning a ``Probe``."""


@hookspec
def fflib_register_negatives(register: Register) -> None:
    """Register negative-sampler factories returning a ``NegativeSampler``."""


@hookspec
def fflib_register_datasets(register: Register) -> None:
    """Register dataset factories ``(**options) -> DataSplits``."""


@hookspec
def fflib_register_presets(register: Register) -> None:
    """Register presets: factories returning a dict of ``ff train`` settings."""


@hookspec
def fflib_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``ff`` command line (``cli.add_command(...)``).

    Called once, when the plugin loads. A name in :data:`CORE_COMMANDS` or one an earlier
    plugin took marks this plugin broken, as a clashing component name does.
    """


@hookspec
def fflib_add_options(options: Options) -> None:
    """Declare ``ff train`` settings: ``options.add(name, type, default=..., help=...)``.

    Each becomes a config-file key, an ``ff train --name`` option and a checked value in
    ``TrainConfig.plugin_options`` (read it with ``run.config.setting(name)``).
    """


# --- training lifecycle ----------------------------------------------------------------


@hookspec
def fflib_train_start(run: TrainingRun) -> None:
    """Training is about to start (model, data and settings are on ``run``).

    It runs before the trainer looks for implementations of the per-batch and per-layer
    hooks, so a plugin can register an observer object here only when it is needed
    (``ffcore.get_plugin_manager().register(obj, name=...)``) and unregister it in
    ``fflib_train_end``.
    """


@hookspec
def fflib_batch_end(run: TrainingRun, epoch: int, batch: int, loss: Tensor) -> None:
    """A batch was trained. ``loss`` is a detached 0-d tensor; reading it forces a sync."""


@hookspec
def fflib_epoch_end(run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch ended; ``metrics`` holds at least ``loss`` and, with validation, ``val_acc``."""


@hookspec
def fflib_train_end(run: TrainingRun, metrics: dict[str, float]) -> None:
    """Training ended; ``metrics`` holds the final figures (``test_acc`` among them)."""


@hookspec
def fflib_layer_activations(
    run: TrainingRun, layer_index: int, layer: FFLayer, h_pos: Tensor, h_neg: Tensor
) -> None:
    """A layer took a training step: its detached positive and negative activations.

    Called once per layer per step: recurrent models (FFRNN) step every layer once per
    frame, so several times per batch.
    """


@hookspec
def fflib_layer_goodness(
    run: TrainingRun,
    layer_index: int,
    layer: FFLayer,
    g_pos: Tensor,
    g_neg: Tensor,
    loss: Tensor,
) -> None:
    """A layer took a training step: its positive and negative goodness and its loss.

    Like :func:`fflib_layer_activations`, once per layer per step (per frame for FFRNN),
    right after it for the same step: a plugin implementing both may keep what the first
    brought (the layer, the activations) for the second.
    """


#: The ``ff`` subcommands the core provides: no plugin command may take these names.
CORE_COMMANDS: frozenset[str] = frozenset(
    {"train", "eval", "predict", "export", "list-plugins", "completion"}
)

#: Registration hook name for each component kind.
REGISTRATION_HOOKS: dict[str, str] = {
    "layer": "fflib_register_layers",
    "model": "fflib_register_models",
    "goodness": "fflib_register_goodness",
    "loss": "fflib_register_losses",
    "probe": "fflib_register_probes",
    "negatives": "fflib_register_negatives",
    "dataset": "fflib_register_datasets",
    "preset": "fflib_register_presets",
}
