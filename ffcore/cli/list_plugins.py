"""``ff list-plugins``: every plugin, where it comes from, what it registers."""

from __future__ import annotations

import json

import click

from ffcore.cli.context import plugin_manager_for
from ffcore.components import KINDS


@click.command("list-plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def list_plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins and the components each registers, by kind."""
    manager = plugin_manager_for(ctx)
    plugins = manager.plugins()
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in plugins], indent=2))
        return
    for info in plugins:
        origin = info.distribution or "registered in Python"
        if info.version:
            origin += f" {info.version}"
        if info.builtin:
            origin += ", built-in"
        click.echo(f"{info.name} ({origin})")
        if info.error:
            click.echo(f"  ERROR: {info.error.splitlines()[0]}")
            continue
        for kind in KINDS:
            names = info.components.get(kind)
            if names:
                specs = [manager.registry(kind).get(n) for n in names]
                for spec in specs:
                    aliases = f" (alias {', '.join(spec.aliases)})" if spec.aliases else ""
                    click.echo(f"  {kind:<10} {spec.name}{aliases}: {spec.description}")
        if not info.components:
            click.echo("  (no components; hooks only)")
