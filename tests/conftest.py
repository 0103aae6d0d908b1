"""Shared fixtures: a fresh plugin manager per test, small threads, no network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from ffcore import plugin_manager
from ffcore.plugin_manager import FFPluginManager

torch.set_num_threads(1)  # predictable on a shared 2-core machine


@pytest.fixture(autouse=True)
def _isolated_plugins(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test starts with no plugin options in the environment and a fresh manager."""
    monkeypatch.delenv(plugin_manager.DISABLE_ENV, raising=False)
    monkeypatch.delenv(plugin_manager.BUILTIN_ONLY_ENV, raising=False)
    monkeypatch.setenv("FFLIB_DATA", str(tmp_path_factory.mktemp("fflib-data")))
    plugin_manager.reset_plugins()
    yield
    plugin_manager.reset_plugins()


@pytest.fixture
def manager() -> FFPluginManager:
    """The process-wide plugin manager with every installed plugin loaded."""
    pm = plugin_manager.get_plugin_manager()
    pm.load_entry_points()
    return pm
