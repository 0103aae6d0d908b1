"""``ff``: the root command group, global plugin options and plugin-added commands.

The root group configures the process-wide plugin manager once, from ``--disable-plugin``
and ``--builtin-plugins-only``, as soon as they are parsed and before any subcommand is
looked up; every command then reads that one manager. Plugin commands are the ones the
manager collected when each plugin loaded (``fflib_register_commands``): built-in commands
win, and a clash or a failing hook is reported by ``ff list-plugins``.

Nothing here imports torch, nor do the command modules at import time or the built-in
plugins when they load (they register their components by reference): ``ff --version``,
``ff --help``, ``ff list-plugins`` and shell completion start in a fraction of a second.
Commands import what they need when they run.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import traceback
from typing import Any, NoReturn

import click

from ffcore import __version__
from ffcore.cli.errors import CLIError
from ffcore.components import normalize_name
from ffcore.errors import FFLibError, UnknownComponentError
from ffcore.plugin_manager import FFPluginManager, configure_plugins, plugin_names

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: Where the root context keeps the manager it configured.
_MANAGER_KEY = "fflib.plugin_manager"
#: Where the root context keeps the arguments it was given (``ff train --nproc`` runs
#: the same arguments in each process it starts).
ARGV_KEY = "fflib.argv"


def plugin_manager(ctx: click.Context) -> FFPluginManager:
    """The process-wide plugin manager, configured from the root command's options.

    Called as soon as the root options are parsed (and by ``--help``, which may come
    first); later calls return the same manager.
    """
    root = ctx.find_root()
    manager = root.meta.get(_MANAGER_KEY)
    if isinstance(manager, FFPluginManager):
        return manager
    disabled = tuple(root.params.get("disable_plugin") or ())
    known = plugin_names()
    for name in disabled:
        # shell completion parses half-typed command lines: no errors then
        if normalize_name(name) not in known and not root.resilient_parsing:
            raise CLIError(f"--disable-plugin: {UnknownComponentError('plugin', name, known)}")
    builtin_only = True if root.params.get("builtin_plugins_only") else None
    manager = configure_plugins(disabled=disabled, builtin_only=builtin_only, reuse=True)
    root.meta[_MANAGER_KEY] = manager
    return manager


class FFGroup(click.Group):
    """A group that configures plugins, adds plugin commands and turns
    :class:`FFLibError` into exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGV_KEY] = list(args)
        rest = super().parse_args(ctx, args)
        plugin_manager(ctx)
        return rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_manager(ctx).commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = plugin_manager(ctx).commands().get(cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FFLibError as exc:
            if ctx.params.get("debug"):
                raise
            raise CLIError(rank_prefix() + str(exc)) from None


def rank_prefix() -> str:
    """``"rank 1: "`` in one of several processes (launcher variables set), else ``""``:
    every rank prints its own errors, and they must say whose they are."""
    if int(os.environ.get("WORLD_SIZE", "1") or "1") > 1 and "RANK" in os.environ:
        return f"rank {os.environ['RANK']}: "
    return ""


@click.group(cls=FFGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", package_name="fflib", prog_name="fflib")
@click.option(
    "--disable-plugin",
    "-d",
    multiple=True,
    metavar="NAME",
    is_eager=True,
    help="Do not load the plugin NAME (repeatable). Also: FFLIB_DISABLE_PLUGINS=a,b.",
)
@click.option(
    "--builtin-plugins-only",
    is_flag=True,
    is_eager=True,
    help="Load only the plugins that ship with fflib. Also: FFLIB_BUILTIN_PLUGINS_ONLY=1.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(disable_plugin: tuple[str, ...], builtin_plugins_only: bool, debug: bool) -> None:
    """FFLib: train and inspect Forward-Forward networks.

    Every layer, model, goodness, loss, probe, negative sampler and dataset is a plugin
    component: see them with `ff list-plugins`. Shell completion: see `ff completion -h`.
    """


def _add_builtin_commands() -> None:
    from ffcore.cli.completion import completion_command
    from ffcore.cli.eval import eval_command
    from ffcore.cli.export import export_command
    from ffcore.cli.list_plugins import list_plugins
    from ffcore.cli.predict import predict_command
    from ffcore.cli.train import train_command

    builtin = (list_plugins, train_command, eval_command, predict_command, export_command)
    for command in (*builtin, completion_command):
        cli.add_command(command)


_add_builtin_commands()


def prepare_to_compute() -> None:
    """What a command that computes with torch calls first, before torch starts its worker
    threads: flush denormal floats to zero until the command ends, in those threads too
    (see :func:`ffcore.devices.flush_denormals`; the mode is restored after, for callers
    that run ``ff`` in-process), and keep freed memory for reuse
    (:func:`ffcore.allocator.reuse_freed_memory`)."""
    from ffcore.allocator import reuse_freed_memory
    from ffcore.devices import flushing_denormals

    reuse_freed_memory()
    click.get_current_context().with_resource(flushing_denormals())


def main() -> None:
    """Console-script entry point."""
    if not rank_prefix():
        cli(prog_name="ff")
        return
    try:
        cli(prog_name="ff")
    except SystemExit as exited:
        leave_rank(exit_status(exited.code))
    except BaseException:  # --debug lets errors through: print them as Python would
        traceback.print_exc()
        leave_rank(1)
    leave_rank(0)


def exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` ends a process with: ``None`` is 0, an int is itself,
    anything else is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave_rank(status: int) -> NoReturn:
    """End one of several processes with ``status`` once its output is flushed, without
    the interpreter's teardown: that teardown destroys gloo's C++ process groups and
    threads while Python itself is being dismantled, and a rank could then abort with
    SIGABRT ("terminate called without an active exception") after a run or an error
    that had ended cleanly, which the launcher would report as that rank's failure.
    The ``atexit`` handlers (a plugin closing its files) still run first."""
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a pipe nobody reads
            stream.flush()
    os._exit(status)
