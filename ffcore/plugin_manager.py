"""Loads plugins from the ``fflib`` entry-point group and fills the component registries.

Every plugin, built-in or third-party, is a module named by an entry point::

    [project.entry-points.fflib]
    my-plugin = "my_package.ff_plugin"

There is one plugin manager per process (:func:`get_plugin_manager`), as in ``llm``:
factories, training, checkpoints and the CLI all read it, and ``ff``'s root command
configures it once from ``--disable-plugin`` / ``--builtin-plugins-only`` before any
subcommand runs. Tests get a fresh one each (:func:`reset_plugins`).

Registration hooks (components, ``ff`` commands, ``ff train`` settings) are called through
pluggy, one plugin at a time (a subset hook caller), so everything is attributed to the
plugin that registered it. A plugin that fails to import, or whose registration hook
raises or registers something invalid or already taken, is recorded as broken with its
error and everything it registered is removed; the other plugins still work. Plugins are
switched off in pytest's manner: ``ff --disable-plugin NAME``, the environment variable
``FFLIB_DISABLE_PLUGINS=name1,name2``, or ``FFLIB_BUILTIN_PLUGINS_ONLY=1`` to load only
the plugins that ship with the ``fflib`` distribution; ``ff list-plugins`` lists them as
disabled.
"""

from __future__ import annotations

import inspect
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import click
import pluggy

from ffcore import hookspecs
from ffcore.components import KINDS, Registry, normalize_name
from ffcore.errors import FFLibError, PluginError
from ffcore.settings import Options, Setting

DISABLE_ENV = "FFLIB_DISABLE_PLUGINS"
BUILTIN_ONLY_ENV = "FFLIB_BUILTIN_PLUGINS_ONLY"
#: The distribution whose entry points are the built-in plugins.
BUILTIN_DISTRIBUTION = "fflib"


@dataclass
class PluginInfo:
    """What ``ff list-plugins`` shows for one plugin.

    ``disabled``: switched off (``--disable-plugin``, ``--builtin-plugins-only`` or their
    environment variables), so not imported. ``error``: why the plugin is broken (it did
    not load, or was rolled back); ``None`` when it works.
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    disabled: bool = False
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        """``plugin 'x' (distribution 'y')``: how errors name where something comes from."""
        where = f" (distribution {self.distribution!r})" if self.distribution else ""
        return f"plugin {self.name!r}{where}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "disabled": self.disabled,
            "error": self.error,
            "components": self.components,
            "commands": self.commands,
            "settings": self.settings,
        }


def _env_disabled() -> list[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _error_text(exc: BaseException, *, with_traceback: bool = True) -> str:
    """The error's type and message on the first line; for an unexpected error (not an
    :class:`FFLibError`) and ``with_traceback``, the last lines of the traceback below it."""
    text = f"{type(exc).__name__}: {exc}"
    if with_traceback and not isinstance(exc, FFLibError):
        text += "\n" + "".join(traceback.format_exception(exc)[-3:]).rstrip()
    return text


def _register_into(registry: Registry, plugin_name: str) -> hookspecs.Register:
    """The ``register`` callable a registration hook gets: adds to ``registry`` for the plugin."""

    def register(
        name: str,
        factory: Callable[..., Any] | str,
        *,
        description: str | None = None,
        aliases: Iterable[str] = (),
    ) -> None:
        registry.register(
            name, factory, description=description, aliases=aliases, plugin=plugin_name
        )

    return register


def _expect_none(plugin_name: str, hook_name: str, results: list[Any]) -> None:
    """Registration hooks add things by calling what they receive; a result is a mistake."""
    if results:
        raise PluginError(
            f"hook {hook_name} of plugin {plugin_name!r} returned {results[0]!r}; "
            "expected None (components are added by calling register(...))"
        )


def _distribution(entry_point: metadata.EntryPoint) -> tuple[str | None, str | None, bool]:
    """The entry point's distribution name and version, and whether it is FFLib itself."""
    dist = entry_point.dist
    name = dist.metadata["Name"] if dist is not None else None
    builtin = name is not None and normalize_name(name) == BUILTIN_DISTRIBUTION
    return name, (dist.version if dist is not None else None), builtin


def _ep_order(entry_point: metadata.EntryPoint) -> tuple[int, str, str]:
    name, _, builtin = _distribution(entry_point)
    return (0 if builtin else 1, normalize_name(entry_point.name), name or "")


def entry_points() -> list[metadata.EntryPoint]:
    """The ``fflib`` entry points, built-in first, then by name (their loading order)."""
    return sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=_ep_order)


@dataclass
class _Registered:
    """What one plugin's registration hooks added, committed only if all of them worked."""

    commands: dict[str, click.Command] = field(default_factory=dict)
    settings: list[Setting] = field(default_factory=list)


class FFPluginManager:
    """The plugin manager: pluggy underneath, plus one :class:`Registry` per kind, the
    ``ff`` commands and the ``ff train`` settings plugins add."""

    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        builtin_only: bool | None = None,
        use_environment: bool = True,
    ) -> None:
        names = list(disabled)
        #: What was asked for (before the environment was read): lets the CLI reuse a manager.
        self.requested = (tuple(sorted(normalize_name(n) for n in names)), builtin_only)
        if use_environment:
            names += _env_disabled()
            if builtin_only is None:
                builtin_only = _env_flag(BUILTIN_ONLY_ENV)
        self.disabled = {normalize_name(n) for n in names}
        self.builtin_only = bool(builtin_only)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
        self._commands: dict[str, tuple[str, click.Command]] = {}
        self._settings: dict[str, Setting] = {}
        self._plugins: dict[str, PluginInfo] = {}
        #: Entry points not loaded because an earlier one had the same name.
        self._shadowed: list[PluginInfo] = []
        self._loaded = False

    # --- loading --------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import every enabled plugin of the ``fflib`` group and run its registration."""
        if self._loaded:
            return
        self._loaded = True
        for entry_point in entry_points():
            name = normalize_name(entry_point.name)
            dist_name, version, builtin = _distribution(entry_point)
            info = PluginInfo(
                name=name,
                module=entry_point.value,
                distribution=dist_name,
                version=version,
                builtin=builtin,
            )
            first = self._plugins.get(name)
            if first is not None:
                info.error = (
                    f"not loaded: entry point {name!r} of distribution {dist_name!r} "
                    f"has the name of {first.source}, which loaded first; rename one of them"
                )
                self._shadowed.append(info)
                continue
            self._plugins[name] = info
            if name in self.disabled or (self.builtin_only and not builtin):
                info.disabled = True
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = _error_text(exc, with_traceback=False)
                continue
            self._add(name, plugin, info)

    def register(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object (a module or any object with hookimpls) directly."""
        self.load_entry_points()
        plugin_name = normalize_name(
            str(name or getattr(plugin, "__name__", type(plugin).__name__))
        )
        known = self._plugins.get(plugin_name)
        if known is not None:
            state = " (disabled)" if known.disabled else ""
            raise PluginError(f"a plugin named {plugin_name!r} is already registered{state}")
        module = getattr(plugin, "__name__", type(plugin).__qualname__)
        info = PluginInfo(name=plugin_name, module=str(module))
        self._plugins[plugin_name] = info
        self._add(plugin_name, plugin, info)
        if info.error is not None:
            raise PluginError(f"plugin {plugin_name!r} failed to register: {info.error}")
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin and everything it registered."""
        plugin_name = normalize_name(name)
        self._plugins.pop(plugin_name, None)
        self._forget(plugin_name)

    def _forget(self, name: str) -> None:
        """Unregister ``name`` from pluggy and drop its components, commands and settings."""
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        for registry in self.registries.values():
            registry.unregister_plugin(name)
        self._commands = {c: entry for c, entry in self._commands.items() if entry[0] != name}
        self._settings = {s: v for s, v in self._settings.items() if v.plugin != name}

    def _add(self, name: str, plugin: object, info: PluginInfo) -> None:
        try:
            _check_hookimpls(plugin, self.pm)
            registered = self._run_registration(name, plugin)
            self.pm.register(plugin, name=name)
        except Exception as exc:  # one plugin's failure stays its own
            info.error = _error_text(exc)
            self._forget(name)
            return
        for command_name, command in registered.commands.items():
            self._commands[command_name] = (name, command)
        for declared in registered.settings:
            self._settings[declared.name] = declared
        for kind, registry in self.registries.items():
            names = [spec.name for spec in registry.specs() if spec.plugin == name]
            if names:
                info.components[kind] = names
        info.commands = sorted(registered.commands)
        info.settings = [s.name for s in registered.settings]

    def _run_registration(self, plugin_name: str, plugin: object) -> _Registered:
        """Run ``plugin``'s registration hooks through pluggy; raise on the first problem.

        The hooks are called on a pluggy manager holding this plugin alone, so whatever
        they register is attributed to it and nothing else runs. (A subset hook caller of
        the main manager would do the same, but keeps the other plugin objects in a set,
        which refuses unhashable ones such as a ``@dataclass`` observer.) Components go
        straight into the registries (``_forget`` takes them out again on failure);
        commands and settings are returned, to be kept only if everything worked.
        """
        solo = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        solo.add_hookspecs(hookspecs)
        solo.register(plugin, name=plugin_name)
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            register = _register_into(self.registries[kind], plugin_name)
            _expect_none(plugin_name, hook_name, getattr(solo.hook, hook_name)(register=register))
        holder = click.Group()
        _expect_none(
            plugin_name, "fflib_register_commands", solo.hook.fflib_register_commands(cli=holder)
        )
        options = Options(plugin_name)
        _expect_none(plugin_name, "fflib_add_options", solo.hook.fflib_add_options(options=options))
        return _Registered(
            commands=self._free_commands(plugin_name, holder.commands),
            settings=_free_settings(options.declared, self._settings),
        )

    def _free_commands(
        self, plugin_name: str, commands: Mapping[str, click.Command]
    ) -> dict[str, click.Command]:
        """``commands``, if none has the name of one of ff's own or an earlier plugin's."""
        for command_name in commands:
            if command_name in hookspecs.CORE_COMMANDS:
                raise PluginError(
                    f"plugin {plugin_name!r} added command {command_name!r}, "
                    "which is one of ff's own commands"
                )
            owner = self._commands.get(command_name)
            if owner is not None:
                raise PluginError(
                    f"plugin {plugin_name!r} added command {command_name!r}, "
                    f"which plugin {owner[0]!r} already added"
                )
        return dict(commands)

    # --- queries --------------------------------------------------------------------

    @property
    def hook(self) -> Any:
        """pluggy's hook relay: ``manager.hook.fflib_epoch_end(run=..., ...)``."""
        self.load_entry_points()
        return self.pm.hook

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (lets hot paths skip idle hooks)."""
        self.load_entry_points()
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def get_plugin(self, name: str) -> object | None:
        """The plugin object registered as ``name`` (``None`` if there is none)."""
        self.load_entry_points()
        return self.pm.get_plugin(normalize_name(name))

    def registry(self, kind: str) -> Registry:
        """The registry of one component kind."""
        if kind not in self.registries:
            raise PluginError(f"unknown component kind {kind!r} (expected one of {KINDS})")
        self.load_entry_points()
        return self.registries[kind]

    def commands(self) -> dict[str, click.Command]:
        """The ``ff`` subcommands plugins added, by name (each plugin's hook ran once)."""
        self.load_entry_points()
        return {name: command for name, (_, command) in sorted(self._commands.items())}

    def settings(self) -> dict[str, Setting]:
        """The ``ff train`` settings plugins declared, by name."""
        self.load_entry_points()
        return dict(self._settings)

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: loaded, broken or disabled; built-ins first, then by name."""
        self.load_entry_points()
        seen = [*self._plugins.values(), *self._shadowed]
        return sorted(seen, key=lambda p: (not p.builtin, p.name, p.distribution or ""))

    def plugin(self, name: str) -> PluginInfo | None:
        """The plugin called ``name``, if it was seen."""
        self.load_entry_points()
        return self._plugins.get(normalize_name(name))

    def names(self) -> list[str]:
        """The names of every plugin seen, without importing any that was not loaded yet."""
        known = {normalize_name(ep.name) for ep in entry_points()}
        return sorted(known | set(self._plugins))


def _hook_arguments(function: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _check_hookimpls(plugin: object, pm: pluggy.PluginManager) -> None:
    """Refuse a misspelt hook or hook argument, saying what it should be, on one line."""
    for attribute in dir(plugin):
        if pm.parse_hookimpl_opts(plugin, attribute) is None:
            continue
        spec = getattr(hookspecs, attribute, None)
        if spec is None or not attribute.startswith("fflib_"):
            known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("fflib_")))
            raise PluginError(f"unknown hook {attribute!r} (known hooks: {known})")
        accepted = _hook_arguments(spec)
        unknown = [a for a in _hook_arguments(getattr(plugin, attribute)) if a not in accepted]
        if unknown:
            raise PluginError(
                f"hook {attribute} has no argument {', '.join(repr(a) for a in unknown)} "
                f"(its arguments: {', '.join(accepted)})"
            )


def _free_settings(declared: list[Setting], taken: Mapping[str, Setting]) -> list[Setting]:
    """``declared``, if no name or alias is ``ff train``'s own, another plugin's or repeated."""
    from ffcore.config import COMMAND_OPTIONS, CORE_SETTINGS

    core = {*COMMAND_OPTIONS, *(n for s in CORE_SETTINGS.values() for n in (s.name, *s.aliases))}
    owners = {n: s.plugin for s in taken.values() for n in (s.name, *s.aliases)}
    for setting in declared:
        for spelling in (setting.name, *setting.aliases):
            if spelling in core:
                raise PluginError(
                    f"plugin {setting.plugin!r} declared setting {spelling!r}, "
                    "which is one of ff train's own"
                )
            if spelling in owners:
                raise PluginError(
                    f"plugin {setting.plugin!r} declared setting {spelling!r}, "
                    f"which plugin {owners[spelling]!r} already declared"
                )
            owners[spelling] = setting.plugin
    return declared


_manager: FFPluginManager | None = None


def get_plugin_manager() -> FFPluginManager:
    """The process-wide plugin manager, created (and plugins loaded) on first use."""
    global _manager
    if _manager is None:
        _manager = FFPluginManager()
    return _manager


def configure_plugins(
    *, disabled: Iterable[str] = (), builtin_only: bool | None = None, reuse: bool = False
) -> FFPluginManager:
    """Replace the process-wide plugin manager (e.g. after ``ff --disable-plugin``).

    With ``reuse``, a current manager that was asked for the same ``disabled`` and
    ``builtin_only`` is kept, with whatever was registered on it from Python.
    """
    global _manager
    wanted = (tuple(sorted(normalize_name(n) for n in disabled)), builtin_only)
    if not (reuse and _manager is not None and _manager.requested == wanted):
        _manager = FFPluginManager(disabled=disabled, builtin_only=builtin_only)
    return _manager


def plugin_names() -> list[str]:
    """Every plugin name known now: installed entry points and the current manager's."""
    if _manager is not None:
        return _manager.names()
    return sorted({normalize_name(ep.name) for ep in entry_points()})


def reset_plugins() -> None:
    """Forget the process-wide manager; the next use loads plugins afresh."""
    global _manager
    _manager = None
