"""Shared fixtures: a fresh plugin manager per test, small threads, no network."""

from __future__ import annotations

import pytest
import torch

from ffcore import plugin_manager
from ffcore.plugin_manager import FFPluginManager
from ffcore.testing import isolated_plugins  # noqa: F401  (autouse: a fresh manager per test)

torch.set_num_threads(1)  # predictable on a shared 2-core machine


@pytest.fixture
def manager() -> FFPluginManager:
    """The process-wide plugin manager with every installed plugin loaded."""
    pm = plugin_manager.get_plugin_manager()
    pm.load_entry_points()
    return pm
