"""The C allocator's settings for training on the CPU (glibc's ``malloc``).

A training step allocates and frees the same large tensors every batch: activations,
negatives, gradients, messages between processes. glibc serves a block above its mmap
threshold (128 KiB at first, adapting upwards) with fresh pages from the kernel and hands
them back when the block is freed, and it returns the free top of its heap to the kernel
above its trim threshold. Each step then faults its big tensors' pages in again and the
kernel zeroes every one of them: thousands of page faults a step for an FFNet of two
layers of 2000 units, time the step spends in the kernel instead of in matrix products,
on every process of a run. Keeping freed memory for the next step removes nearly all of
them. What it costs: the process keeps its peak memory until it ends (or until
:func:`return_free_memory`), which a training process reaches every step anyway.

Where the C library is not glibc (macOS, musl), nothing changes. Setting the environment
variable ``FFLIB_KEEP_MALLOC=1`` leaves glibc's own settings alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from functools import cache

#: Set to 1 to leave the C allocator's settings as they are.
KEEP_MALLOC_ENV = "FFLIB_KEEP_MALLOC"
#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks below this come from the heap, whose freed memory is reused: every tensor of a
#: training step but a giant one (a larger block still gets its own pages).
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap is handed back only beyond this.
TRIM_THRESHOLD = (1 << 31) - 1


@cache
def _glibc() -> ctypes.CDLL | None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def reuse_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of handing it back to
    the kernel after every step (see the module doc); ``True`` where that took effect.

    Process-wide and idempotent: :func:`ffcore.training.train` calls it, and ``ff``
    commands that compute; a no-op with ``FFLIB_KEEP_MALLOC=1`` or without glibc.
    """
    if os.environ.get(KEEP_MALLOC_ENV, "") not in ("", "0"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    mmap_set = int(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) == 1
    trim_set = int(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) == 1
    return mmap_set and trim_set


def return_free_memory() -> bool:
    """Hand the memory ``malloc`` holds free back to the kernel (``malloc_trim``), e.g.
    after training in a process that goes on to do other things; ``True`` if any was."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
