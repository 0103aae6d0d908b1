"""Shell completion: component names from the registries, and ``ff completion SHELL``.

Completion runs ``ff`` itself (click's ``_FF_COMPLETE`` protocol) on every Tab, so it must
start fast: the plugins load without importing torch (they register their components by
reference) and the names come straight from the registries.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

from ffcore.components import KINDS, normalize_name

#: The shells click completes.
SHELLS = ("bash", "fish", "zsh")

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def component_names(kind: str, incomplete: str) -> list[CompletionItem]:
    """Registered ``kind`` names that start with ``incomplete`` (aliases only when no
    canonical name does, so that Tab offers each component once)."""
    from ffcore.plugin_manager import get_plugin_manager

    specs = get_plugin_manager().registry(kind).specs()
    prefix = normalize_name(incomplete)
    items = [CompletionItem(s.name, help=s.description) for s in specs if s.name.startswith(prefix)]
    if not items:
        items = [
            CompletionItem(alias, help=s.description)
            for s in specs
            for alias in s.aliases
            if alias.startswith(prefix)
        ]
    return items


def complete_component(kind: str) -> Completer:
    """A click ``shell_complete`` callback offering the registered ``kind`` names."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}")

    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return component_names(kind, incomplete)

    return complete


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_command(shell: str) -> None:
    """Print the script that turns on Tab completion for ff in SHELL.

    It completes commands, options and the names of components (--model, --dataset,
    --goodness, --loss, --negatives, --probe, --preset) from the installed plugins.
    Turn it on for good by adding one line to the shell's startup file:

    \b
      bash: eval "$(_FF_COMPLETE=bash_source ff)"        # ~/.bashrc
      zsh:  eval "$(_FF_COMPLETE=zsh_source ff)"         # ~/.zshrc
      fish: _FF_COMPLETE=fish_source ff | source         # ~/.config/fish/completions/ff.fish
    """
    from ffcore.cli.main import cli

    shell_class = get_completion_class(shell)
    assert shell_class is not None  # click.Choice admits only the shells click knows
    click.echo(shell_class(cli, {}, "ff", "_FF_COMPLETE").source())
