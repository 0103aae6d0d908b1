"""Fixtures for fflib-conv's tests: a fresh plugin manager per test, one thread, no network.

The tests use the *installed* plugin (``pip install ./plugins/fflib-conv``): FFLib finds it
through its ``fflib`` entry point, exactly as it finds any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from ffcore import plugin_manager

torch.set_num_threads(1)  # predictable on a shared machine


@pytest.fixture(autouse=True)
def _isolated_plugins(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No plugin options from the environment, a fresh manager, a private data directory."""
    monkeypatch.delenv(plugin_manager.DISABLE_ENV, raising=False)
    monkeypatch.delenv(plugin_manager.BUILTIN_ONLY_ENV, raising=False)
    monkeypatch.setenv("FFLIB_DATA", str(tmp_path_factory.mktemp("fflib-data")))
    plugin_manager.reset_plugins()
    yield
    plugin_manager.reset_plugins()
