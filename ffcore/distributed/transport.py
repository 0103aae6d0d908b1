"""Point-to-point messages between neighbouring pipeline stages, double-buffered.

A message is a list of tensors whose shapes change from batch to batch (the last batch is
smaller; FF+C's messages grow along the pipeline), so each travels as a small header
(count, then each tensor's dtype and shape) followed by the tensors themselves, all with
``isend``/``irecv`` on a process group that holds just the two neighbours.

Sending is asynchronous: :meth:`Outbox.send` returns at once and keeps at most
:data:`IN_FLIGHT` messages on their way (waiting for the oldest beyond that), so a stage
computes batch ``t + 1`` while batch ``t`` travels. Receiving is double-buffered by a
thread: while the stage computes batch ``t`` the :class:`Inbox` thread already waits for
batch ``t + 1``'s header and receives its tensors (torch's waits release the GIL). A
thread, because a gloo receive cannot be polled: its completion shows only by waiting.

Besides data, a header says "skipped" (the stage below skipped this batch, see
``--on-nonfinite skip``) or "end" (the sender is done: the inbox thread stops).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from ffcore.distributed.faults import communicating

#: Messages an outbox keeps on their way before it waits for the oldest.
IN_FLIGHT = 2
#: Messages an inbox receives ahead of the one the stage asks for.
AHEAD = 2
#: Header length (int64 values): the count, then per tensor its dtype, rank and sizes.
HEADER_SLOTS = 256
HEADER_TAG = 0
SKIPPED, END = -1, -2
DTYPES = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
)


@dataclass(frozen=True)
class Skipped:
    """What :meth:`Inbox.receive` returns for a batch the stage below skipped."""


def encode_header(tensors: Sequence[Tensor], device: torch.device) -> Tensor:
    """The header describing ``tensors``: count, then dtype code, rank and sizes of each."""
    values = [len(tensors)]
    for tensor in tensors:
        values += [DTYPES.index(tensor.dtype), tensor.dim(), *tensor.shape]
    if len(values) > HEADER_SLOTS:
        raise ValueError(f"a pipeline message of {len(tensors)} tensors does not fit a header")
    header = torch.zeros(HEADER_SLOTS, dtype=torch.int64)
    header[: len(values)] = torch.tensor(values, dtype=torch.int64)
    return header.to(device)


def control_header(code: int, device: torch.device) -> Tensor:
    """A header that carries no tensors: :data:`SKIPPED` or :data:`END`."""
    header = torch.zeros(HEADER_SLOTS, dtype=torch.int64)
    header[0] = code
    return header.to(device)


def _started(work: dist.Work | None) -> dist.Work:
    """The handle of an asynchronous operation (torch types it optional)."""
    assert work is not None
    return work


def decode_header(header: Tensor) -> int | list[tuple[torch.dtype, tuple[int, ...]]]:
    """A control code, or the dtype and shape of each tensor of the message."""
    values = header.tolist()
    count = values[0]
    if count < 0:
        return int(count)
    specs: list[tuple[torch.dtype, tuple[int, ...]]] = []
    at = 1
    for _ in range(count):
        dtype, ndim = DTYPES[values[at]], values[at + 1]
        specs.append((dtype, tuple(values[at + 2 : at + 2 + ndim])))
        at += 2 + ndim
    return specs


class Outbox:
    """Sends messages to the next stage (``peer``) on ``group``, asynchronously."""

    def __init__(self, peer: int, group: dist.ProcessGroup, device: torch.device) -> None:
        self.peer = peer
        self.group = group
        self.device = device
        self._in_flight: deque[tuple[list[dist.Work], list[Tensor]]] = deque()
        self.bytes_sent = 0

    def send(self, tensors: Sequence[Tensor]) -> None:
        """Start sending ``tensors``; return without waiting for them to arrive."""
        payload = [t.detach().contiguous() for t in tensors]
        self._post(encode_header(payload, self.device), payload)

    def skip(self) -> None:
        """Tell the next stage that this batch was skipped."""
        self._post(control_header(SKIPPED, self.device), [])

    def close(self) -> None:
        """Tell the next stage that nothing more comes; wait for everything to arrive."""
        self._post(control_header(END, self.device), [])
        while self._in_flight:
            self._wait_oldest()

    def _post(self, header: Tensor, payload: list[Tensor]) -> None:
        with communicating("sending to the next pipeline stage", self.peer):
            works = [_started(dist.isend(header, self.peer, group=self.group, tag=HEADER_TAG))]
            for index, tensor in enumerate(payload):
                works.append(
                    _started(dist.isend(tensor, self.peer, group=self.group, tag=1 + index))
                )
        self.bytes_sent += sum(t.numel() * t.element_size() for t in payload)
        self._in_flight.append((works, [header, *payload]))
        while len(self._in_flight) > IN_FLIGHT:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        works, _ = self._in_flight.popleft()
        with communicating("sending to the next pipeline stage", self.peer):
            for work in works:
                work.wait()


class Inbox:
    """Receives the previous stage's (``peer``'s) messages on a thread, ahead of use."""

    def __init__(self, peer: int, group: dist.ProcessGroup, device: torch.device) -> None:
        self.peer = peer
        self.group = group
        self.device = device
        self._messages: queue.Queue[list[Tensor] | Skipped | BaseException | None] = queue.Queue(
            maxsize=AHEAD
        )
        self._thread = threading.Thread(
            target=self._receive_all, name=f"fflib-inbox-from-{peer}", daemon=True
        )
        self._closed = False
        self.seconds_waiting = 0.0
        self._thread.start()

    def receive(self) -> list[Tensor] | Skipped:
        """The next message (waiting for it if it has not arrived yet)."""
        if self._closed:
            raise RuntimeError("the pipeline inbox is closed")
        started = time.perf_counter()
        message = self._messages.get()
        self.seconds_waiting += time.perf_counter() - started
        if message is None:
            self._closed = True
            raise RuntimeError(f"the stage on rank {self.peer} ended its messages early")
        if isinstance(message, BaseException):
            self._closed = True
            raise message
        return message

    def close(self) -> None:
        """Wait for the previous stage's end of messages (every message was read)."""
        if self._closed:
            return
        self._closed = True
        message = self._messages.get()
        if isinstance(message, BaseException):
            raise message
        if message is not None:
            raise RuntimeError(f"rank {self.peer} sent a pipeline message nobody read")
        self._thread.join()

    def _receive_all(self) -> None:
        try:
            while True:
                header = torch.empty(HEADER_SLOTS, dtype=torch.int64, device=self.device)
                with communicating("receiving from the previous pipeline stage", self.peer):
                    _started(dist.irecv(header, self.peer, group=self.group, tag=HEADER_TAG)).wait()
                specs = decode_header(header)
                if specs == END:
                    self._messages.put(None)
                    return
                if specs == SKIPPED:
                    self._messages.put(Skipped())
                    continue
                assert isinstance(specs, list)
                tensors = [torch.empty(s, dtype=d, device=self.device) for d, s in specs]
                with communicating("receiving from the previous pipeline stage", self.peer):
                    works = [
                        _started(dist.irecv(t, self.peer, group=self.group, tag=1 + i))
                        for i, t in enumerate(tensors)
                    ]
                    for work in works:
                        work.wait()
                self._messages.put(tensors)
        except BaseException as exc:  # handed to the stage, which raises it
            self._messages.put(exc)
