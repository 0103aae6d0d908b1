"""Graceful stops: SIGINT (Ctrl-C) or SIGTERM asks training to stop after the batch.

The handler stays installed until the run's checkpoint is on disk (``ff train`` holds it
around training and the final save), so a signal at any moment of a run leaves a
checkpoint: during training the run stops after its batch and saves; once the final
checkpoint is written (:meth:`StopRequests.interrupting`), a signal stops at once, since
nothing more can be lost. A second signal always stops at once, naming the last
checkpoint that was written (:class:`StopNow`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopNow(KeyboardInterrupt):
    """A signal that stops the process at once (a second one, or one after the final save).

    ``checkpoint`` is the last checkpoint written completely, ``None`` if there is none.
    A ``KeyboardInterrupt``, so code that handles Ctrl-C handles it too.
    """

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        where = f"last checkpoint: {checkpoint}" if checkpoint else "no checkpoint written"
        super().__init__(f"stopped at once by signal {signum} ({where})")


class StopRequests:
    """While active, the first SIGINT/SIGTERM is recorded instead of killing the process.

    A second signal raises :class:`StopNow` (in the main thread, where the handler runs)
    with the last checkpoint recorded by :meth:`saved`. Outside the main thread it does
    nothing. Entering it again while active is a no-op, so the CLI can hold it around
    :func:`~ffcore.training.train`, which holds it too.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.checkpoint: str | None = None
        self._immediate = False
        self._depth = 0
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def saved(self, path: str | Path | None) -> None:
        """Record ``path`` as the last checkpoint written completely."""
        if path is not None:
            self.checkpoint = str(path)

    @contextmanager
    def interrupting(self) -> Iterator[None]:
        """Inside the block, the first signal stops at once too (the run is on disk)."""
        if self.signum is not None:
            raise StopNow(self.signum, self.checkpoint)
        self._immediate = True
        try:
            yield
        finally:
            self._immediate = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or self._immediate:
            self.signum = self.signum or signum
            raise StopNow(signum, self.checkpoint)
        self.signum = signum

    def __enter__(self) -> StopRequests:
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth:
            return
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
