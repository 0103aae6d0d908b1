"""When another process fails: one clear error, on every rank that notices, never a hang.

A rank that dies closes its connections, and gloo fails the others' next operation with
it at once; a rank that hangs is caught by the process group's timeout (see
:mod:`ffcore.distributed.environment`). Either way torch raises a ``RuntimeError`` with
a transport message; :func:`communicating` turns it into a :class:`DistributedError`
naming this rank, the rank it lost and what it was doing. Under ``torchrun`` or
``ff train --nproc`` the launcher also names the rank whose process failed first.

Checks that each rank makes on its own share (the end-of-epoch health check) must end
the same way on every rank: :func:`agree_on_failure` shares their outcome, so that every
rank raises the same error, or none does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch.distributed as dist

from ffcore.errors import DivergenceError, FFLibError


class DistributedError(FFLibError):
    """Another process of the run died, stopped answering, or could not be reached."""


def _others(me: int) -> str:
    world = dist.get_world_size() if dist.is_initialized() else 0
    others = [str(rank) for rank in range(world) if rank != me]
    if len(others) == 1:
        return f"rank {others[0]}"
    return f"one of ranks {', '.join(others)}" if others else "another rank"


def lost_contact(what: str, peer: int | None, error: BaseException) -> DistributedError:
    """The error for a failed operation with ``peer`` (``None``: a collective)."""
    me = dist.get_rank() if dist.is_initialized() else -1
    who = f"rank {peer}" if peer is not None else _others(me)
    lines = str(error).strip().splitlines()
    detail = lines[0] if lines else type(error).__name__
    if "timeout" in detail.lower() or "timed out" in detail.lower():
        reason = "stopped answering within the process group's timeout"
    else:
        reason = "died or closed its connection"
    return DistributedError(
        f"rank {me} lost contact with {who} while {what}: {who} {reason} ({detail}); "
        "the run stops without a new checkpoint"
    )


@contextmanager
def communicating(what: str, peer: int | None = None) -> Iterator[None]:
    """Turn a failed torch.distributed operation inside the block into a
    :class:`DistributedError` (``what``: "sending to the next pipeline stage"...)."""
    try:
        yield
    except FFLibError:
        raise
    except RuntimeError as exc:  # DistBackendError and DistNetworkError are RuntimeErrors
        raise lost_contact(what, peer, exc) from None


def agree_on_failure(
    check: Callable[[], None], group: dist.ProcessGroup, *, all_must_fail: bool
) -> None:
    """Run ``check`` on every rank and raise the same :class:`DivergenceError` on all of
    them when any rank's check failed (``all_must_fail``: only when every rank's did).

    Data-parallel ranks hold the same weights, so a finite check fails on all of them
    alike, and a layer is silent only if it is silent on every rank's share of the batch;
    pipeline ranks check different layers, so one failure is enough.
    """
    message: str | None = None
    try:
        check()
    except DivergenceError as exc:
        message = str(exc)
    messages: list[str | None] = [None] * dist.get_world_size(group)
    with communicating("comparing the end-of-epoch checks"):
        dist.all_gather_object(messages, message, group=group)
    failed = [(rank, text) for rank, text in enumerate(messages) if text is not None]
    if failed and (len(failed) == len(messages) or not all_must_fail):
        rank, text = failed[0]
        raise DivergenceError(text if all_must_fail else f"rank {rank}: {text}")
