"""Test isolation for FFLib's test suite and for plugins' (a pytest fixture).

Import the fixture into a ``conftest.py`` and it applies to every test beside it::

    from ffcore.testing import isolated_plugins  # noqa: F401  (an autouse fixture)

Each test then starts with no plugin options from the environment, a fresh process-wide
plugin manager (so what one test registers, disables or configures is gone for the next)
and a private ``FFLIB_DATA`` directory (so no test reads or downloads into the user's
data cache). Importing this module imports pytest; nothing else in FFLib does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ffcore import plugin_manager


@pytest.fixture(autouse=True)
def isolated_plugins(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No plugin options from the environment, a fresh manager, a private data directory."""
    monkeypatch.delenv(plugin_manager.DISABLE_ENV, raising=False)
    monkeypatch.delenv(plugin_manager.BUILTIN_ONLY_ENV, raising=False)
    monkeypatch.setenv("FFLIB_DATA", str(tmp_path_factory.mktemp("fflib-data")))
    plugin_manager.reset_plugins()
    yield
    plugin_manager.reset_plugins()
