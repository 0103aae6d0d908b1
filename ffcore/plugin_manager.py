"""Loads plugins from the ``fflib`` entry-point group and fills the component registries.

Every plugin, built-in or third-party, is a module named by an entry point::

    [project.entry-points.fflib]
    my-plugin = "my_package.ff_plugin"

A plugin that fails to import, or whose registration hook raises or registers something
invalid, is recorded as broken with its error; the other plugins still work. Plugins are
switched off in pytest's manner: ``ff --disable-plugin NAME``, the environment variable
``FFLIB_DISABLE_PLUGINS=name1,name2``, or ``FFLIB_BUILTIN_PLUGINS_ONLY=1`` to load only
the plugins that ship with the ``fflib`` distribution.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from ffcore import hookspecs
from ffcore.components import KINDS, Registry, normalize_name
from ffcore.errors import FFLibError, PluginError

DISABLE_ENV = "FFLIB_DISABLE_PLUGINS"
BUILTIN_ONLY_ENV = "FFLIB_BUILTIN_PLUGINS_ONLY"
#: The distribution whose entry points are the built-in plugins.
BUILTIN_DISTRIBUTION = "fflib"


@dataclass
class PluginInfo:
    """What ``ff list-plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "error": self.error,
            "components": self.components,
        }


def _env_disabled() -> list[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class FFPluginManager:
    """The plugin manager: pluggy underneath, plus one :class:`Registry` per kind."""

    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        builtin_only: bool | None = None,
        use_environment: bool = True,
    ) -> None:
        names = list(disabled)
        #: What was asked for (before the environment was read): lets callers reuse a manager.
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
        self._plugins: dict[str, PluginInfo] = {}
        self._loaded = False

    # --- loading --------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import every enabled plugin of the ``fflib`` group and register its components."""
        if self._loaded:
            return
        self._loaded = True
        for entry_point in self._entry_points():
            name = normalize_name(entry_point.name)
            if name in self._plugins or name in self.disabled:
                continue
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            builtin = dist_name is not None and normalize_name(dist_name) == BUILTIN_DISTRIBUTION
            if self.builtin_only and not builtin:
                continue
            info = PluginInfo(
                name=name,
                module=entry_point.value,
                distribution=dist_name,
                version=dist.version if dist is not None else None,
                builtin=builtin,
            )
            self._plugins[name] = info
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = _error_text(exc)
                continue
            self._add(name, plugin, info)

    @staticmethod
    def _entry_points() -> list[metadata.EntryPoint]:
        return sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=_ep_order)

    def register(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object (a module or any object with hookimpls) directly."""
        self.load_entry_points()
        plugin_name = normalize_name(
            str(name or getattr(plugin, "__name__", type(plugin).__name__))
        )
        if plugin_name in self._plugins:
            raise PluginError(f"a plugin named {plugin_name!r} is already registered")
        module = getattr(plugin, "__name__", type(plugin).__qualname__)
        info = PluginInfo(name=plugin_name, module=str(module))
        self._plugins[plugin_name] = info
        self._add(plugin_name, plugin, info)
        if info.error is not None:
            raise PluginError(f"plugin {plugin_name!r} failed to register: {info.error}")
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin and every component it registered."""
        plugin_name = normalize_name(name)
        self._plugins.pop(plugin_name, None)
        if self.pm.has_plugin(plugin_name):
            self.pm.unregister(name=plugin_name)
        for registry in self.registries.values():
            registry.unregister_plugin(plugin_name)

    def _add(self, name: str, plugin: object, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=name)
            self._check_hook_names(name)
        except Exception as exc:  # e.g. a hookimpl with a name or argument pluggy rejects
            info.error = _error_text(exc)
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            return
        try:
            for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
                self._run_registration(name, kind, hook_name)
        except Exception as exc:
            info.error = _error_text(exc)
            if not isinstance(exc, FFLibError):
                info.error += "\n" + "".join(traceback.format_exception(exc)[-3:]).rstrip()
            self.pm.unregister(name=name)
            for registry in self.registries.values():
                registry.unregister_plugin(name)
            return
        for kind, registry in self.registries.items():
            names = [spec.name for spec in registry.specs() if spec.plugin == name]
            if names:
                info.components[kind] = names

    def _check_hook_names(self, plugin_name: str) -> None:
        """Refuse an ``@hookimpl`` whose name matches no hookspec (a misspelt hook)."""
        plugin = self.pm.get_plugin(plugin_name)
        for attribute in dir(plugin):
            if self.pm.parse_hookimpl_opts(plugin, attribute) is None:
                continue
            if not hasattr(hookspecs, attribute):
                known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("fflib_")))
                raise PluginError(f"unknown hook {attribute!r} (known hooks: {known})")

    def _run_registration(self, plugin_name: str, kind: str, hook_name: str) -> None:
        hook = getattr(self.pm.hook, hook_name)
        registry = self.registries[kind]
        for impl in hook.get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue

            def register(
                name: str,
                factory: Callable[..., Any],
                *,
                description: str | None = None,
                aliases: Iterable[str] = (),
            ) -> None:
                registry.register(
                    name, factory, description=description, aliases=aliases, plugin=plugin_name
                )

            arguments: dict[str, Any] = {"register": register}
            result = impl.function(*[arguments[arg] for arg in impl.argnames])
            if result is not None:
                raise PluginError(
                    f"hook {hook_name} of plugin {plugin_name!r} returned {result!r}; "
                    "expected None (components are added by calling register(...))"
                )

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

    def registry(self, kind: str) -> Registry:
        """The registry of one component kind."""
        if kind not in self.registries:
            raise PluginError(f"unknown component kind {kind!r} (expected one of {KINDS})")
        self.load_entry_points()
        return self.registries[kind]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or broken, built-ins first."""
        self.load_entry_points()
        return sorted(self._plugins.values(), key=lambda p: (not p.builtin, p.name))

    def plugin(self, name: str) -> PluginInfo | None:
        """The plugin called ``name``, if it was seen."""
        self.load_entry_points()
        return self._plugins.get(normalize_name(name))


def _ep_order(entry_point: metadata.EntryPoint) -> tuple[int, str]:
    dist = entry_point.dist
    is_builtin = (
        dist is not None and normalize_name(dist.metadata["Name"] or "") == BUILTIN_DISTRIBUTION
    )
    return (0 if is_builtin else 1, entry_point.name)


_manager: FFPluginManager | None = None


def get_plugin_manager() -> FFPluginManager:
    """The process-wide plugin manager, created (and plugins loaded) on first use."""
    global _manager
    if _manager is None:
        _manager = FFPluginManager()
    return _manager


def configure_plugins(
    *, disabled: Iterable[str] = (), builtin_only: bool | None = None
) -> FFPluginManager:
    """Replace the process-wide plugin manager (e.g. after ``ff --disable-plugin``)."""
    global _manager
    _manager = FFPluginManager(disabled=disabled, builtin_only=builtin_only)
    return _manager


def reset_plugins() -> None:
    """Forget the process-wide manager; the next use loads plugins afresh."""
    global _manager
    _manager = None
