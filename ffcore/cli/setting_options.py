"""A declared setting as a click option: one function for the core's and the plugins'.

Every option defaults to ``None`` ("not given"), so that only what the user typed
overrides the preset and the config file; the declared default shows in the help.
"""

from __future__ import annotations

import typing
from typing import Any

import click

from ffcore.cli.completion import complete_component
from ffcore.components import KINDS
from ffcore.settings import Setting


def _parse_text(setting: Setting) -> Any:
    """A click callback reading a setting with its own text syntax (``--layers 2000,2000``)."""
    parse = setting.parse
    assert parse is not None

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return callback


def _base_type(hint: Any) -> Any:
    """``float | None`` -> ``float``."""
    members = [m for m in typing.get_args(hint) if m is not type(None)]
    return members[0] if len(members) == 1 else hint


def _click_type(setting: Setting) -> click.ParamType[Any]:
    if setting.choices:
        return click.Choice(list(setting.choices))
    if setting.path is not None:
        return click.Path(file_okay=setting.path == "file", dir_okay=setting.path == "dir")
    base = _base_type(setting.type)
    if base is int:
        return click.INT
    if base is float:
        return click.FLOAT
    return click.STRING


def _help(setting: Setting) -> str:
    default = setting.default
    if default is None or isinstance(default, bool) or setting.type is bool:
        return setting.help
    return f"{setting.help} [default: {default}]"


def setting_option(setting: Setting) -> click.Option:
    """The ``ff train`` option for ``setting``: ``--name`` (and aliases), its type, help."""
    names = list(setting.option_names)
    if setting.short:
        names.append(setting.short)
    if _base_type(setting.type) is bool:
        flags = [f"{n}/--no-{n.removeprefix('--')}" for n in names if n.startswith("--")]
        return click.Option([*flags, setting.name], default=None, help=_help(setting))
    return click.Option(
        [*names, setting.name],
        type=_click_type(setting),
        callback=_parse_text(setting) if setting.parse is not None else None,
        default=None,
        metavar=setting.metavar,
        help=_help(setting),
        # a setting named like a component kind (model, dataset, ...) names a component
        shell_complete=complete_component(setting.name) if setting.name in KINDS else None,
    )
