"""A declared setting as a click option: one function for the core's and the plugins'.

Every option defaults to ``None`` ("not given"), so that only what the user typed
overrides the preset and the config file; the help shows the effective default: what each
data set's recipe sets, else the declared default.
"""

from __future__ import annotations

import typing
from typing import Any

import click

from ffcore.cli.completion import complete_component
from ffcore.components import KINDS
from ffcore.config import MODEL_SETTINGS
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


def _shown(value: Any) -> str:
    """A value as the user would type it: ``[500, 500]`` -> ``500,500``."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


#: Core settings whose recipe values the help does not list (a recipe's data set is its own).
_NOT_FROM_RECIPES = frozenset({"preset", "dataset"})


def _help(setting: Setting) -> str:
    """The help text with the effective default: for a core setting that data sets'
    recipes set, what each sets and the default without a recipe."""
    default = setting.default
    recipes: dict[str, Any] = {}
    if setting.plugin is None and setting.name not in _NOT_FROM_RECIPES:
        from ffcore.recipes import recipe_values

        recipes = recipe_values(setting.name)
    if recipes:
        listed = "; ".join(f"{name}: {_shown(value)}" for name, value in recipes.items())
        fallback = "the model's" if setting.name in MODEL_SETTINGS else _shown(default)
        return f"{setting.help} [default: the data set's recipe ({listed}), else {fallback}]"
    if default is None or isinstance(default, bool) or setting.type is bool:
        return setting.help
    return f"{setting.help} [default: {default}]"


class SettingOption(click.Option):
    """A setting's option, whose help (with the recipes' defaults, read from the
    registered presets) is written when help is shown, not when the command is built."""

    def __init__(self, setting: Setting, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = _help(self.setting)
        return super().get_help_record(ctx)


def setting_option(setting: Setting) -> click.Option:
    """The ``ff train`` option for ``setting``: ``--name`` (and aliases), its type, help."""
    names = list(setting.option_names)
    if setting.short:
        names.append(setting.short)
    if _base_type(setting.type) is bool:
        flags = [f"{n}/--no-{n.removeprefix('--')}" for n in names if n.startswith("--")]
        return SettingOption(setting, [*flags, setting.name], default=None, help=setting.help)
    return SettingOption(
        setting,
        [*names, setting.name],
        type=_click_type(setting),
        callback=_parse_text(setting) if setting.parse is not None else None,
        default=None,
        metavar=setting.metavar,
        help=setting.help,
        # a setting named like a component kind (model, dataset, ...) names a component
        shell_complete=complete_component(setting.name) if setting.name in KINDS else None,
    )
