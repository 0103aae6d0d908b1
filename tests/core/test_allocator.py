"""The C allocator keeps freed memory for the next training step (glibc)."""

from __future__ import annotations

import platform
import sys

import pytest

from ffcore import allocator
from tests.core.scripts import run_in_a_fresh_process

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"

# Page faults per "step" that allocates a 48 MiB tensor and frees it (what a training step
# does with its activations and gradients), before and after. glibc's adaptive threshold
# stops at 32 MiB: by default such a block always gets fresh pages.
_FAULTS = """
import resource, torch
from ffcore.allocator import reuse_freed_memory

def step():
    torch.ones(12 << 20)

def faults():  # the fewest per step of three windows of five steps
    step()
    counts = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            step()
        counts.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
    return min(counts)

first = faults()
changed = reuse_freed_memory()
print(first, changed, faults())
"""


def _faults(env: dict[str, str]) -> tuple[float, bool, float]:
    first, changed, then = run_in_a_fresh_process(_FAULTS, env).split()
    return float(first), changed == "True", float(then)


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's; other C libraries keep theirs")
def test_freed_tensors_memory_is_reused_instead_of_faulted_in_again() -> None:
    first, changed, then = _faults({allocator.KEEP_MALLOC_ENV: "0"})
    # 48 MiB are 12,288 pages: glibc's defaults fault in every one of them every step
    assert changed and first > 10_000
    assert then < 100


def test_keep_malloc_environment_variable_leaves_the_allocator_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(allocator.KEEP_MALLOC_ENV, "1")
    assert allocator.reuse_freed_memory() is False
    _, changed, then = _faults({allocator.KEEP_MALLOC_ENV: "1"})
    assert not changed
    if GLIBC:
        assert then > 10_000  # still faulted in every step


def test_free_memory_goes_back_on_request() -> None:
    # a bool either way; on glibc it runs malloc_trim
    assert isinstance(allocator.return_free_memory(), bool)
