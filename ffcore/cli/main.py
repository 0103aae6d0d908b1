"""``ff``: the root command group, global plugin options and plugin-added commands."""

from __future__ import annotations

from typing import Any

import click

from ffcore import __version__
from ffcore.cli.context import plugin_manager_for
from ffcore.cli.errors import CLIError
from ffcore.devices import flush_denormals
from ffcore.errors import FFLibError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class FFGroup(click.Group):
    """A group that adds plugin commands and turns :class:`FFLibError` into exit code 2."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        manager = plugin_manager_for(ctx)
        holder = click.Group()
        for impl in manager.hook.fflib_register_commands.get_hookimpls():
            try:
                impl.function(*[{"cli": holder}[arg] for arg in impl.argnames])
            except Exception as exc:  # one plugin's bad command must not break `ff`
                info = manager.plugin(impl.plugin_name)
                if info is not None:
                    info.error = f"fflib_register_commands failed: {type(exc).__name__}: {exc}"
        return {name: cmd for name, cmd in holder.commands.items() if name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._plugin_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = self._plugin_commands(ctx).get(cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FFLibError as exc:
            if ctx.params.get("debug"):
                raise
            raise CLIError(str(exc)) from None


@click.group(cls=FFGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", package_name="fflib", prog_name="fflib")
@click.option(
    "--disable-plugin",
    "-d",
    multiple=True,
    metavar="NAME",
    help="Do not load the plugin NAME (repeatable). Also: FFLIB_DISABLE_PLUGINS=a,b.",
)
@click.option(
    "--builtin-plugins-only",
    is_flag=True,
    help="Load only the plugins that ship with fflib. Also: FFLIB_BUILTIN_PLUGINS_ONLY=1.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(disable_plugin: tuple[str, ...], builtin_plugins_only: bool, debug: bool) -> None:
    """FFLib: train and inspect Forward-Forward networks.

    Every layer, model, goodness, loss, probe, negative sampler and dataset is a plugin
    component: see them with `ff list-plugins`.
    """


def _add_builtin_commands() -> None:
    from ffcore.cli.eval import eval_command
    from ffcore.cli.list_plugins import list_plugins
    from ffcore.cli.train import train_command

    cli.add_command(list_plugins)
    cli.add_command(train_command)
    cli.add_command(eval_command)


_add_builtin_commands()


def main() -> None:
    """Console-script entry point."""
    flush_denormals()  # before torch starts its worker threads, so they share the mode
    cli(prog_name="ff")
