"""The plugin manager a command runs with, honouring the root command's plugin options."""

from __future__ import annotations

import click

from ffcore.components import normalize_name
from ffcore.plugin_manager import FFPluginManager, configure_plugins, get_plugin_manager


def plugin_manager_for(ctx: click.Context) -> FFPluginManager:
    """The manager for ``--disable-plugin`` / ``--builtin-plugins-only`` as given to ``ff``."""
    root = ctx.find_root()
    disabled = tuple(root.params.get("disable_plugin") or ())
    builtin_only = True if root.params.get("builtin_plugins_only") else None
    wanted = (tuple(sorted(normalize_name(n) for n in disabled)), builtin_only)
    manager = get_plugin_manager()
    if manager.requested != wanted:
        manager = configure_plugins(disabled=disabled, builtin_only=builtin_only)
    return manager
