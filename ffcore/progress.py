"""Training progress for people: a bar on a terminal, a heartbeat line everywhere else.

:class:`ConsoleProgress` is what ``ff train`` shows and what :func:`ffcore.training.train`
shows from Python unless told ``progress=None``:

- at the start, the run in one line (model, parameters, data sizes, device) and which
  preset its settings started from;
- on a terminal (or in a Jupyter kernel), a bar per epoch (tqdm) with the running loss,
  samples per second and the whole run's remaining time;
- without one (CI logs, ``nohup``, a pipe), one heartbeat line every
  :data:`HEARTBEAT_SECONDS`: ``epoch 1/60 batch 40/106 loss 0.71 1,950 samples/s ETA 1:20``;
- one line per epoch with its mean loss and validation accuracy.

The running loss is the trainer's on-device sum; it is read (a host-device sync) only when
the bar is redrawn with a new figure or a heartbeat is due, never once per batch.
Verbosity :data:`QUIET` shows nothing, :data:`VERBOSE` adds every setting's value and
origin and each epoch's learning rate and throughput.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ffcore.errors import InvalidValueError

if TYPE_CHECKING:
    from torch import Tensor

    from ffcore.training import TrainingRun

#: Seconds between two heartbeat lines when there is no terminal to draw a bar on.
HEARTBEAT_SECONDS = 10.0
#: Seconds between two readings of the running loss for the bar.
BAR_READ_SECONDS = 1.0
#: Verbosity levels: nothing; the run, a bar or heartbeat and epoch lines; plus details.
QUIET, NORMAL, VERBOSE = 0, 1, 2


class Progress(Protocol):
    """What the trainer reports to a progress display.

    :class:`SilentProgress` implements every method as a no-op, to subclass when only some
    events matter (``examples/example_runner.py`` prints one line per epoch that way).
    """

    def train_start(self, run: TrainingRun) -> None:
        """Training starts, or resumes at ``run.epoch``, ``run.batch``."""

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` starts, with ``batches`` batches."""

    def advance(self, loss_sum: Tensor) -> None:
        """One batch was trained; ``loss_sum`` is the epoch's loss so far, summed over its
        batches, on the device: reading it waits for the device, so read it rarely."""

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Epoch ``epoch`` ended with ``metrics`` (``loss``, ``val_acc``, ``epoch_seconds``)."""

    def train_end(self, metrics: dict[str, float]) -> None:
        """Training ended with the final ``metrics`` (``test_acc`` among them)."""


class SilentProgress:
    """A :class:`Progress` that shows nothing: subclass it and override what you need."""

    def train_start(self, run: TrainingRun) -> None:
        """Nothing."""

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        """Nothing."""

    def advance(self, loss_sum: Tensor) -> None:
        """Nothing."""

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Nothing."""

    def train_end(self, metrics: dict[str, float]) -> None:
        """Nothing."""


def format_duration(seconds: float) -> str:
    """``80`` -> ``1:20``; ``4000`` -> ``1:06:40``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_metrics(metrics: dict[str, float]) -> str:
    """``loss 0.1234  val_acc 91.20%  (1.3s)``."""
    parts = []
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    if "val_acc" in metrics:
        parts.append(f"val_acc {100 * metrics['val_acc']:.2f}%")
    if "epoch_seconds" in metrics:
        parts.append(f"({metrics['epoch_seconds']:.1f}s)")
    return "  ".join(parts)


def count_parameters(model: Any) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_run(run: TrainingRun) -> list[str]:
    """The lines that introduce a run: what trains on what, and where its settings
    came from."""
    config, data = run.config, run.data
    val_size = len(data.val) if data.val is not None else 0
    sizes = f"{len(data.train)} train / {val_size} val / {len(data.test)} test"
    precision = f", precision {config.precision}" if config.precision != "fp32" else ""
    lines = [
        f"model {run.names['model']} ({count_parameters(run.model):,} parameters) on "
        f"{run.names['dataset']} ({sizes}), probe {run.names['probe']}, negatives "
        f"{run.names['negatives']}, device {run.device}{precision}"
    ]
    described = run.resolved.describe() if run.resolved is not None else None
    if described is not None:
        lines.append(described)
    if run.epoch or run.batch:
        lines.append(f"resuming at epoch {run.epoch + 1}, batch {run.batch}")
    return lines


def describe_settings(run: TrainingRun) -> list[str]:
    """Every setting with its value and where it came from (``--verbose``)."""
    sources = run.resolved.sources if run.resolved is not None else {}
    values = run.config.to_dict()
    width = max(len(key) for key in values)
    return [
        f"  {key:<{width}} = {value!r}  ({sources.get(key, '?')})" for key, value in values.items()
    ]


class _Bar(Protocol):
    """The part of tqdm's bar this module uses."""

    def update(self, n: int = 1) -> object: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel, whose output is no terminal but shows bars."""
    return "ipykernel" in sys.modules


def _make_bar(epoch: int, epochs: int, batches: int, done: int, stream: TextIO) -> _Bar:
    if _in_kernel():
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    bar: _Bar = tqdm(
        total=batches,
        initial=done,
        desc=f"epoch {epoch:>{len(str(epochs))}}/{epochs}",
        file=stream,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.2,
        bar_format="{desc} {bar} {n_fmt}/{total_fmt}{postfix}",
    )
    return bar


class ConsoleProgress(SilentProgress):
    """Progress for people on a terminal or in a log (see the module docstring).

    ``out`` gets the run's description and the epoch lines, ``err`` the bar or the
    heartbeat lines; both default to ``sys.stderr`` (looked up when used), so that a
    script's own output on stdout stays clean; ``ff train`` sends ``out`` to stdout.
    ``interactive`` says whether to draw a bar (default: ``err`` is a terminal, or this
    runs in a Jupyter kernel). ``clock`` gives seconds (tests pass a fake one).
    ``summary`` prints the final test accuracy at the end.
    """

    def __init__(
        self,
        verbosity: int = NORMAL,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: float = HEARTBEAT_SECONDS,
        summary: bool = True,
    ) -> None:
        self.verbosity = verbosity
        self._out, self._err = out, err
        self._interactive = interactive
        self.clock = clock
        self.heartbeat = heartbeat
        self.summary = summary
        self._run: TrainingRun | None = None
        self._bar: _Bar | None = None
        self._epoch = self._epochs = self._batches = 0
        self._done = 0  # batches done in the current epoch
        self._started = 0.0  # clock when training started
        self._trained = 0  # batches trained since training started
        self._remaining = 0  # batches left in the run when training started
        self._last_read = 0.0  # clock and samples at the last loss reading
        self._last_samples = 0

    # --- where output goes -------------------------------------------------------------

    @property
    def out(self) -> TextIO:
        return self._out or sys.stderr

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    @property
    def interactive(self) -> bool:
        if self._interactive is not None:
            return self._interactive
        isatty = getattr(self.err, "isatty", None)
        return bool(isatty is not None and isatty()) or _in_kernel()

    def _line(self, text: str, stream: TextIO | None = None) -> None:
        target = stream or self.out
        target.write(text + "\n")
        target.flush()

    # --- events ------------------------------------------------------------------------

    def train_start(self, run: TrainingRun) -> None:
        self._run = run
        from ffcore.data import num_batches

        config = run.config
        batches = num_batches(len(run.data.train), config.batch_size)
        self._remaining = max(0, (config.epochs - run.epoch) * batches - run.batch)
        self._started = self._last_read = self.clock()
        self._trained = self._last_samples = 0
        if self.verbosity >= NORMAL:
            for line in describe_run(run):
                self._line(line)
        if self.verbosity >= VERBOSE:
            self._line("every setting (value, origin):")
            for line in describe_settings(run):
                self._line(line)

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self._epoch, self._epochs, self._batches = epoch, epochs, batches
        run = self._run
        self._done = run.batch if run is not None else 0
        if self.verbosity >= NORMAL and self.interactive:
            self._bar = _make_bar(epoch, epochs, batches, self._done, self.err)

    def advance(self, loss_sum: Tensor) -> None:
        self._done += 1
        self._trained += 1
        if self.verbosity < NORMAL:
            return
        if self._bar is not None:
            self._bar.update(1)
        now = self.clock()
        due = BAR_READ_SECONDS if self._bar is not None else self.heartbeat
        if now - self._last_read < due:
            return
        status = self._status(float(loss_sum), now)  # the only read of the device's loss
        if self._bar is not None:
            self._bar.set_postfix_str(status, refresh=True)
        else:
            batches = f"batch {self._done}/{self._batches}"
            self._line(f"epoch {self._epoch}/{self._epochs} {batches} {status}", self.err)

    def _status(self, loss_sum: float, now: float) -> str:
        """``loss 0.71 1,950 samples/s ETA 1:20``, and the reading's time and samples kept."""
        samples = self._samples_trained()
        rate = (samples - self._last_samples) / max(now - self._last_read, 1e-9)
        self._last_read, self._last_samples = now, samples
        elapsed = now - self._started
        left = max(0, self._remaining - self._trained)
        eta = elapsed / self._trained * left if self._trained else 0.0
        loss = loss_sum / max(self._done, 1)
        return f"loss {loss:.4g} {rate:,.0f} samples/s ETA {format_duration(eta)}"

    def _samples_trained(self) -> int:
        """Samples trained since the start (the last batch of an epoch may be short)."""
        run = self._run
        if run is None:
            return self._trained
        size, total = run.config.batch_size, len(run.data.train)
        return self._trained * size - max(0, self._done * size - total)

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.verbosity < NORMAL:
            return
        line = f"epoch {epoch:>{len(str(self._epochs))}}/{self._epochs}  {format_metrics(metrics)}"
        run = self._run
        if self.verbosity >= VERBOSE and run is not None:
            seconds = metrics.get("epoch_seconds")
            if seconds:
                line += f"  {len(run.data.train) / seconds:,.0f} samples/s"
            line += f"  lr {_first_lr(run):.3g}"
        self._line(line)

    def train_end(self, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.summary and self.verbosity >= NORMAL and "test_acc" in metrics:
            seconds = metrics.get("train_seconds", self.clock() - self._started)
            self._line(
                f"test accuracy: {100 * metrics['test_acc']:.2f}%  (trained in {seconds:.1f}s)"
            )


def _first_lr(run: TrainingRun) -> float:
    """The first optimizer's learning rate now (the schedule at work)."""
    optimizers = run.model.optimizers()
    return float(optimizers[0].param_groups[0]["lr"]) if optimizers else float("nan")


#: ``train(run, progress=AUTO)``: a :class:`ConsoleProgress` at normal verbosity.
AUTO = "auto"


def console_progress(progress: Progress | str | None) -> Progress | None:
    """``progress`` itself, ``None``, or for :data:`AUTO` a new :class:`ConsoleProgress`."""
    if progress == AUTO:
        return ConsoleProgress()
    if isinstance(progress, str):
        raise InvalidValueError("progress", progress, f"a Progress, None or {AUTO!r}")
    return progress
