"""The tracer: the hook object ffdebug registers while a traced run trains.

It exists only while ``--tensorboard`` is on, so an untraced run has no per-layer or
per-batch hook implementations and pays nothing. When it is on, the layer hooks copy a
batch's tensors (on the device) only on traced batches (``run.step % every == 0``); the
batch-end hook computes every statistic on the device and fetches them all with one copy.
Other batches cost a modulo per hook call: no tensor work, no host-device sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ffcore import get_plugin_manager, hookimpl
from ffcore.data import num_batches
from ffcore.errors import FFLibError, InvalidValueError
from ffcore.eval_mode import eval_mode
from ffcore.interfaces import FFLayer
from ffdebug import TRACER_NAME, default_trace_every
from ffdebug.debug import ff_layers
from ffdebug.events import HPARAM_METRICS, EventWriter, goodness_layout, markdown_table
from ffdebug.stats import (
    FRAME_TAGS,
    Packet,
    add_layer,
    add_parameters,
    classifier_metrics,
    frame_values,
    layer_accuracies,
    other_parameters,
)

if TYPE_CHECKING:
    from ffcore.training import TrainingRun

#: At most this many validation samples for the per-layer and classifier accuracies.
EVAL_SAMPLES = 256


@dataclass
class _LayerTrace:
    """What the hooks saw of one layer on the traced batch (the last frame, for FFRNN)."""

    layer: nn.Module
    h_pos: Tensor | None = None
    h_neg: Tensor | None = None
    g_pos: Tensor | None = None
    g_neg: Tensor | None = None
    loss: Tensor | None = None
    frames: list[Tensor] = field(default_factory=list)


class Tracer:
    """Writes a run's traces to a TensorBoard log directory (see the README for the tags).

    Steps are batches: a traced batch is filed under the number of batches trained before
    it (``run.step``), an epoch's figures under the number trained by its end.

    In a run that several processes train (``run.parallel``), each rank writes its own
    event file (suffix ``.rank{r}``) into the one log directory: rank 0 the run's
    description, the epochs' figures and, data parallel, everything else (every rank holds
    the same weights); a pipeline stage its own layers' tags (and the last stage the
    read-out's parameters). A pipeline writes no ``batch/loss`` (each layer's loss is in
    its tags) and no per-layer accuracies at epoch ends (no rank holds every layer).
    """

    def __init__(self, run: TrainingRun, logdir: str, every: int | None = None) -> None:
        if every is None:
            every = default_trace_every(num_batches(len(run.data.train), run.config.batch_size))
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidValueError("trace_every", every, "a positive integer")
        self.run = run
        self.every = every
        parallel = run.parallel
        #: This rank writes the run's own tags; it holds every layer's current weights;
        #: it trains the parameters outside the FF layers.
        self.main = parallel is None or parallel.rank == 0
        self.whole_model = parallel is None or parallel.whole_model
        self.owns_readout = parallel is None or (
            parallel.owns_readout and (self.main or not parallel.whole_model)
        )
        suffix = "" if parallel is None else f".rank{parallel.rank}"
        self.events = EventWriter(logdir, filename_suffix=suffix)
        self._step = -1
        self._layers: dict[int, _LayerTrace] = {}
        #: The last epoch with a traced batch (its end gets the evaluations).
        self._traced_epoch = -1
        split = run.data.val if run.data.val is not None and len(run.data.val) else run.data.train
        self._eval_x = split.x[:EVAL_SAMPLES]
        self._eval_y = split.y[:EVAL_SAMPLES]
        try:
            if self.main:
                self._describe(run)
        except BaseException:
            self.events.close()
            raise

    # --- the run's description -------------------------------------------------------

    def _describe(self, run: TrainingRun) -> None:
        config = run.config.to_dict()
        rows = [(key, _text(value)) for key, value in config.items()]
        self.events.text("run/config", markdown_table(("setting", "value"), rows), run.step)
        components = _component_names(run)
        self.events.text(
            "run/components",
            markdown_table(("kind", "name"), [(k, v or "-") for k, v in components.items()]),
            run.step,
        )
        self.events.text("run/model", "```\n" + repr(run.model) + "\n```", run.step)
        settings: dict[str, Any] = {
            k: v for k, v in config.items() if not isinstance(v, dict) and k != "out"
        }
        settings.update({k: v for k, v in components.items() if v is not None})
        for table in ("model_options", "dataset_options", "negatives_options"):
            for key, value in config[table].items():
                settings[f"{table.removesuffix('_options')}.{key}"] = value
        self.events.hparams_start(settings)
        self.events.custom_scalars(goodness_layout(len(ff_layers(run.model))))
        self.events.flush()

    # --- per-layer hooks: copy the tensors of traced batches only -----------------------

    def _traced(self, run: TrainingRun) -> bool:
        """Whether ``run``'s current batch is one to trace: this tracer's run, every Nth."""
        return run is self.run and run.step % self.every == 0

    def _trace(self, run: TrainingRun, index: int, layer: nn.Module) -> _LayerTrace:
        if run.step != self._step:
            self._step = run.step
            self._layers = {}
        trace = self._layers.get(index)
        if trace is None:
            trace = self._layers[index] = _LayerTrace(layer)
        return trace

    @hookimpl
    def fflib_layer_activations(
        self, run: TrainingRun, layer_index: int, layer: FFLayer, h_pos: Tensor, h_neg: Tensor
    ) -> None:
        if self._traced(run):
            trace = self._trace(run, layer_index, layer)
            # copies: the model may reuse these buffers before the batch ends
            trace.h_pos, trace.h_neg = h_pos.detach().clone(), h_neg.detach().clone()

    @hookimpl
    def fflib_layer_goodness(
        self, run: TrainingRun, layer_index: int, g_pos: Tensor, g_neg: Tensor, loss: Tensor
    ) -> None:
        """The step's goodness; the layer itself came just before, with its activations."""
        traced = self._traced(run) and run.step == self._step
        trace = self._layers.get(layer_index) if traced else None
        if trace is None:
            return
        trace.g_pos, trace.g_neg = g_pos.detach().clone(), g_neg.detach().clone()
        trace.loss = loss.detach().clone()
        trace.frames.append(frame_values(trace.layer, g_pos, g_neg, loss))

    # --- batch, epoch and train ends --------------------------------------------------

    @hookimpl
    def fflib_batch_end(self, run: TrainingRun, epoch: int, batch: int, loss: Tensor) -> None:
        if not self._traced(run):
            return
        layers = self._layers if self._step == run.step else {}
        self._layers, self._step = {}, -1
        self._traced_epoch = epoch
        packet = Packet()
        if self.whole_model:
            packet.scalar("batch/loss", loss)
        for index, trace in sorted(layers.items()):
            prefix = f"layer{index}"
            if (
                trace.h_pos is not None
                and trace.h_neg is not None
                and trace.g_pos is not None
                and trace.g_neg is not None
                and trace.loss is not None
            ):
                add_layer(
                    packet,
                    prefix,
                    trace.layer,
                    trace.h_pos,
                    trace.h_neg,
                    trace.g_pos,
                    trace.g_neg,
                    trace.loss,
                )
            if len(trace.frames) > 1:  # a recurrent model: goodness frame by frame
                for number, values in enumerate(trace.frames, 1):
                    tags = [f"{prefix}_frames/frame{number:02d}/{tag}" for tag in FRAME_TAGS]
                    packet.scalars(tags, values)
        if self.owns_readout:
            add_parameters(packet, "model", other_parameters(run.model))
        self.events.write(packet.fetch(), run.step)

    @hookimpl
    def fflib_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        if run is not self.run or not self.main:
            return
        packet = Packet()
        packet.scalar("epoch/train_loss", metrics["loss"])
        if "val_acc" in metrics:
            packet.scalar("epoch/val_acc", metrics["val_acc"])
        if "epoch_seconds" in metrics:
            packet.scalar("epoch/seconds", metrics["epoch_seconds"])
        if self.whole_model and (self._traced_epoch == epoch or run.epoch >= run.config.epochs):
            self._evaluate(run, packet)
        self.events.write(packet.fetch(), run.step)
        self.events.flush()

    def _evaluate(self, run: TrainingRun, packet: Packet) -> None:
        """Each layer's accuracy alone and the classifier's, on the evaluation samples."""
        model = run.model
        with eval_mode(model):
            accuracies = layer_accuracies(model, self._eval_x, self._eval_y)
            if accuracies is not None:
                tags = [f"epoch/layer{i}_acc" for i in range(len(accuracies))]
                packet.scalars(tags, accuracies)
            classifier = classifier_metrics(model, self._eval_x, self._eval_y)
            if classifier is not None:
                packet.scalars(["classifier/val_loss", "classifier/val_acc"], classifier)

    @hookimpl
    def fflib_train_end(self, run: TrainingRun, metrics: dict[str, float]) -> None:
        if run is not self.run:
            return
        try:
            names = dict(zip(HPARAM_METRICS, ("test_acc", "val_acc", "loss"), strict=True))
            values = {tag: metrics[key] for tag, key in names.items() if key in metrics}
            if self.main:
                self.events.hparams_end(values, run.step)
        finally:
            self.close()
            manager = get_plugin_manager()
            if manager.get_plugin(TRACER_NAME) is self:
                manager.unregister(TRACER_NAME)

    def close(self) -> None:
        """Flush and close the event file (idempotent)."""
        self._layers = {}
        self.events.close()


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _component_names(run: TrainingRun) -> dict[str, str | None]:
    """Every component the run uses, defaults resolved where the core can say."""
    try:
        from ffcore.runs import component_names

        return component_names(run)
    except (FFLibError, KeyError, ValueError, TypeError):  # a model factory we cannot inspect
        names: dict[str, str | None] = dict(run.names)
        return names
