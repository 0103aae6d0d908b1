"""Declared settings: a setting's type, default, help and command-line spelling, said once.

``ff train``'s own settings are declared as :class:`~ffcore.config.TrainConfig` fields
(their dataclass metadata, see :func:`setting_field`); a plugin declares its settings in the
``fflib_add_options`` hook (:class:`Options`). From one :class:`Setting` FFLib derives the
value check (:func:`check_value`), the config-file key check, the ``ff train`` option and
whether ``ff train --resume`` may change the setting. The core therefore knows no plugin's
settings by name, and a setting's type is written in one place.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from ffcore.errors import InvalidValueError, PluginError

T = TypeVar("T")

#: The metadata key under which a ``TrainConfig`` field carries its declaration.
METADATA_KEY = "fflib_setting"
#: Setting names are Python identifiers in snake case: they are config-file keys and
#: keyword names; the option is the name in kebab case (``log_every``: ``--log-every``).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

PathKind = Literal["file", "dir"]


@dataclass(frozen=True)
class Setting:
    """One ``ff train`` setting: config-file key, ``TrainConfig`` value and option.

    ``type`` is a type hint (``int``, ``float``, ``str``, ``bool``, ``list[int]``,
    ``dict[str, Any]``, or one of those ``| None``); a ``float`` setting also takes an
    integer. ``check`` is a range check run after the type check, ``expected`` what an
    error says a good value is (derived from the type when empty). ``aliases`` are other
    option names (``log_dir`` gives ``--log-dir``), ``short`` a one-letter option (core
    settings only). ``cli=False`` keeps the setting out of ``ff train``'s options (it is
    still a config key). ``resumable`` settings may be changed by ``ff train --resume``.
    ``plugin`` is who declared it (``None``: the core).
    """

    name: str
    type: Any
    default: Any = None
    help: str = ""
    expected: str = ""
    choices: tuple[str, ...] = ()
    check: Callable[[Any], bool] | None = None
    aliases: tuple[str, ...] = ()
    short: str | None = None
    cli: bool = True
    path: PathKind | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    resumable: bool = False
    plugin: str | None = None

    @property
    def option_names(self) -> tuple[str, ...]:
        """The long option names: ``--name`` and ``--alias``, in kebab case."""
        return tuple(f"--{n.replace('_', '-')}" for n in (self.name, *self.aliases))

    def describe_expected(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.expected:
            return self.expected
        if self.choices:
            return " or ".join(repr(c) for c in self.choices)
        return describe_type(self.type)


def setting_field(
    default: T,
    help: str = "",
    *,
    expected: str = "",
    choices: Iterable[str] = (),
    check: Callable[[Any], bool] | None = None,
    aliases: Iterable[str] = (),
    short: str | None = None,
    cli: bool = True,
    path: PathKind | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    resumable: bool = False,
) -> T:
    """A ``TrainConfig`` field declared as a setting (its type is the field's annotation)."""
    metadata = {
        METADATA_KEY: {
            "help": help,
            "expected": expected,
            "choices": tuple(choices),
            "check": check,
            "aliases": tuple(aliases),
            "short": short,
            "cli": cli,
            "path": path,
            "metavar": metavar,
            "parse": parse,
            "resumable": resumable,
        }
    }
    if isinstance(default, dict | list):
        factory = type(default)
        return cast(T, dataclasses.field(default_factory=factory, metadata=metadata))
    declared: T = dataclasses.field(default=default, metadata=metadata)
    return declared


def dataclass_settings(cls: type) -> dict[str, Setting]:
    """The settings a dataclass declares with :func:`setting_field`, in field order."""
    hints = typing.get_type_hints(cls)
    found: dict[str, Setting] = {}
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(METADATA_KEY)
        if declared is None:
            continue
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = field.default
        found[field.name] = Setting(
            name=field.name, type=hints[field.name], default=default, **declared
        )
    return found


# --- types ---------------------------------------------------------------------------


def _union_members(hint: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return None


def fits(value: object, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (``bool`` is not an ``int`` here, and a
    ``float`` is finite: no setting means anything by NaN or infinity)."""
    members = _union_members(hint)
    if members is not None:
        return any(fits(value, member) for member in members)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    origin = typing.get_origin(hint) or hint
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin is float:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value))
        )
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return all(fits(v, item) for v in value)
    if origin is dict:
        if not isinstance(value, Mapping):
            return False
        args = typing.get_args(hint)
        return not args or all(fits(v, args[1]) for v in value.values())
    try:
        return isinstance(value, origin)
    except TypeError:  # a hint isinstance cannot test (a callable type, a protocol): no check
        return True


_TYPE_WORDS = {
    int: "an integer",
    float: "a finite number",
    str: "a string",
    bool: "true or false",
    dict: "a table of options",
}


def describe_type(hint: Any) -> str:
    """``int`` -> ``an integer``; ``list[int]`` -> ``a list of integers``."""
    members = _union_members(hint)
    if members is not None:
        return " or ".join(describe_type(m) for m in members if m is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin is Literal:
        return " or ".join(repr(v) for v in typing.get_args(hint))
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return f"a list of {describe_type(item).removeprefix('an ').removeprefix('a ')}s"
    return _TYPE_WORDS.get(origin, f"a {getattr(origin, '__name__', origin)}")


def check_value(setting: Setting, value: object) -> None:
    """Raise :class:`InvalidValueError` unless ``value`` fits ``setting``'s type and checks."""
    if value is None and setting.default is None:
        return
    valid = (
        fits(value, setting.type)
        and (not setting.choices or value in setting.choices)
        and (setting.check is None or value is None or setting.check(value))
    )
    if not valid:
        raise InvalidValueError(setting.name, value, setting.describe_expected())


def parse_int_list(text: str) -> list[int]:
    """``"2000,2000"`` -> ``[2000, 2000]`` (spaces ignored); ``ValueError`` otherwise."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(f"{text!r}: expected comma-separated integers, e.g. 2000,2000") from None


# --- plugin declarations ---------------------------------------------------------------


class Options:
    """What ``fflib_add_options`` receives: :meth:`add` declares one ``ff train`` setting.

    In the spirit of pytest's ``parser.addoption``: the plugin states each setting's type,
    default and help once, and FFLib makes it a config-file key, an ``ff train`` option and
    a checked value in ``TrainConfig.plugin_options``.
    """

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.declared: list[Setting] = []

    def add(
        self,
        name: str,
        type: Any,
        *,
        default: Any = None,
        help: str,
        expected: str = "",
        choices: Iterable[str] = (),
        check: Callable[[Any], bool] | None = None,
        aliases: Iterable[str] = (),
        path: PathKind | None = None,
        metavar: str | None = None,
        resumable: bool = False,
    ) -> None:
        """Declare setting ``name`` of type ``type`` (``int``, ``float``, ``str``, ``bool``,
        ``list[int]``...). ``default`` ``None`` means "not set". ``resumable``: whether
        ``ff train --resume`` may change it (e.g. where logs go)."""
        declared = Setting(
            name=name,
            type=type,
            default=default,
            help=help,
            expected=expected,
            choices=tuple(choices),
            check=check,
            aliases=tuple(aliases),
            path=path,
            metavar=metavar,
            resumable=resumable,
            plugin=self.plugin,
        )
        for spelling in (name, *declared.aliases):
            if not isinstance(spelling, str) or not NAME_PATTERN.match(spelling):
                raise PluginError(
                    f"plugin {self.plugin!r} declared setting {spelling!r}: expected a snake-case "
                    "name (lower-case letters, digits and '_', starting with a letter)"
                )
        if default is not None:
            try:
                check_value(declared, default)
            except InvalidValueError as exc:
                raise PluginError(
                    f"plugin {self.plugin!r} declared setting {name!r} with a default that "
                    f"does not fit it: {exc}"
                ) from None
        self.declared.append(declared)
