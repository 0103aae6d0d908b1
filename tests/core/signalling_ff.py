"""``ff`` with a test plugin that marks (or sends) signals at chosen moments of a run.

Run as ``python -m tests.core.signalling_ff MODE FF-ARGS...``; MODE is

- ``slow-test``: the probe sleeps on each test batch and prints ``TESTING`` to stderr
  first, so the parent can signal the process while the test split is evaluated;
- ``twice-at-step:N``: the batch-end hook sends this process SIGTERM twice at step N.

Run with ``--val-split 0``, so that the probe sees only the test split.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from torch import Tensor, nn

import ffcore
from ffcore.cli.main import main
from ffcore.hookspecs import Register
from ffcore.interfaces import Probe
from ffcore.plugin_manager import get_plugin_manager
from ffcore.registry import create_probe
from ffcore.training import TrainingRun


class SlowProbe(Probe):
    """TryAll, slowly, announcing the first call."""

    def __init__(self) -> None:
        self.inner = create_probe("tryall")
        self.announced = False

    def check(self, model: nn.Module) -> None:
        self.inner.check(model)

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        if not self.announced:
            self.announced = True
            print("TESTING", file=sys.stderr, flush=True)
        time.sleep(5)
        return self.inner.predict(model, x)


class SignalPlugin:
    """Registers the slow probe; sends signals from the batch-end hook when asked."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    @ffcore.hookimpl
    def fflib_register_probes(self, register: Register) -> None:
        register("slow-tryall", SlowProbe)

    @ffcore.hookimpl
    def fflib_batch_end(self, run: TrainingRun) -> None:
        if self.mode.startswith("twice-at-step:") and run.step == int(self.mode.split(":")[1]):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the second signal's handler runs before this returns


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    get_plugin_manager().register(SignalPlugin(mode), name="signal-test")
    sys.argv = ["ff", *args]
    main()
