"""``ff list-plugins``: every plugin, where it comes from, what it registers."""

from __future__ import annotations

import json

import click

from ffcore.components import KINDS
from ffcore.plugin_manager import FFPluginManager, PluginInfo, get_plugin_manager


def _origin(info: PluginInfo) -> str:
    origin = info.distribution or "registered in Python"
    if info.version:
        origin += f" {info.version}"
    if info.builtin:
        origin += ", built-in"
    return origin


def _contents(manager: FFPluginManager, info: PluginInfo) -> list[str]:
    """One line per component, command and ``ff train`` setting the plugin added."""
    lines = []
    for kind in KINDS:
        for name in info.components.get(kind, []):
            spec = manager.registry(kind).get(name)
            aliases = f" (alias {', '.join(spec.aliases)})" if spec.aliases else ""
            lines.append(f"{kind:<10} {spec.name}{aliases}: {spec.description}")
    commands = manager.commands()
    for name in info.commands:
        summary = commands[name].get_short_help_str(limit=80)
        lines.append(f"{'command':<10} ff {name}: {summary}")
    settings = manager.settings()
    for name in info.settings:
        declared = settings[name]
        lines.append(f"{'option':<10} {'/'.join(declared.option_names)}: {declared.help}")
    return lines


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def list_plugins(as_json: bool) -> None:
    """List installed plugins and the components each registers, by kind.

    Disabled plugins are listed as such; a broken one with the reason it did not load.
    """
    manager = get_plugin_manager()
    plugins = manager.plugins()
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in plugins], indent=2))
        return
    for info in plugins:
        click.echo(f"{info.name} ({_origin(info)})")
        if info.disabled:
            click.echo("  disabled")
        elif info.error:
            click.echo(f"  ERROR: {info.error.splitlines()[0]}")
        else:
            lines = _contents(manager, info)
            for line in lines or ["(no components; hooks only)"]:
                click.echo(f"  {line}")
