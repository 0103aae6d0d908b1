"""Named components and the registries that hold them (one registry per kind).

A component is a factory with a name, a one-line description and typed keyword options,
registered by a plugin. Names are kebab case (``fashion-mnist``, ``sum-squares``); lookups
accept underscores and any letter case, so ``Fashion_MNIST`` finds ``fashion-mnist``.

A factory may be registered by reference, ``"package.module:function"`` with a
description: its module is imported the first time the component is built or its options
are read (:class:`LazyFactory`), so listing components, ``ff --help`` and shell completion
never import torch or the plugin's code.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ffcore.errors import InvalidValueError, PluginError, UnknownComponentError

#: The component kinds, in the order ``ff list-plugins`` shows them.
KINDS: tuple[str, ...] = (
    "layer",
    "model",
    "goodness",
    "loss",
    "probe",
    "negatives",
    "dataset",
    "preset",
)

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
#: ``package.module:attribute`` (the attribute may be dotted), as in entry points.
_REFERENCE_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def normalize_name(name: str) -> str:
    """Return the canonical (kebab case, lower case) form of a component name."""
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component: what ``list_*`` shows and ``create_*`` builds."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str
    aliases: tuple[str, ...] = ()

    def option_names(self) -> list[str] | None:
        """Keyword options the factory accepts, or ``None`` if it accepts any."""
        parameters = _signature(self.factory).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        return [
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]

    def accepts(self, option: str) -> bool:
        """Whether the factory takes ``option`` as a keyword argument."""
        names = self.option_names()
        return names is None or option in names


def _signature(factory: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(factory)


class LazyFactory:
    """A factory named by reference (``"package.module:function"``), imported on first use.

    Calling it, or reading its signature (``inspect.signature``, which
    :meth:`ComponentSpec.option_names` does), imports the module; until then registering
    and listing the component costs nothing. An import that fails is a
    :class:`~ffcore.errors.PluginError` naming the component and its plugin.
    """

    def __init__(self, reference: str, *, kind: str, name: str, plugin: str) -> None:
        self.reference = reference
        self.kind = kind
        self.name = name
        self.plugin = plugin
        self._target: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The factory itself (its module is imported the first time)."""
        if self._target is None:
            module_name, _, attribute = self.reference.partition(":")
            try:
                target: Any = importlib.import_module(module_name)
                for part in attribute.split("."):
                    target = getattr(target, part)
            except Exception as exc:  # any failure of the plugin's code is the plugin's
                raise PluginError(
                    f"{self.kind} {self.name!r} of plugin {self.plugin!r}: cannot import "
                    f"{self.reference}: {type(exc).__name__}: {exc}"
                ) from exc
            if not callable(target):
                raise PluginError(
                    f"{self.kind} {self.name!r} of plugin {self.plugin!r}: {self.reference} "
                    f"is {target!r}, which is not callable"
                )
            self._target = target
        return self._target

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())

    @property
    def loaded(self) -> bool:
        """Whether the factory's module has been imported."""
        return self._target is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"LazyFactory({self.reference!r})"


def _loaded(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The factory itself, imported if it was registered by reference."""
    return factory.resolve() if isinstance(factory, LazyFactory) else factory


def _describe(factory: Callable[..., Any]) -> str:
    doc = inspect.getdoc(factory) or ""
    first_line = doc.strip().splitlines()[0] if doc.strip() else ""
    return first_line


@dataclass
class Registry:
    """All components of one kind, by name (timm-style ``list``/``create`` helpers)."""

    kind: str
    _specs: dict[str, ComponentSpec] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)

    def register(
        self,
        name: str,
        factory: Callable[..., Any] | str,
        *,
        description: str | None = None,
        aliases: Iterable[str] = (),
        plugin: str = "python",
    ) -> ComponentSpec:
        """Add a component; its description defaults to the factory docstring's first line.

        ``factory`` may be a reference, ``"package.module:function"``, imported when the
        component is first built (:class:`LazyFactory`); give ``description`` with it, or
        the module is imported now to read the docstring.
        """
        if not isinstance(name, str) or not _NAME_PATTERN.match(normalize_name(name)):
            raise PluginError(
                f"plugin {plugin!r} registered a {self.kind} with invalid name {name!r} "
                "(expected letters, digits, '-' or '_', starting with a letter or digit)"
            )
        if isinstance(factory, str):
            if not _REFERENCE_PATTERN.match(factory):
                raise PluginError(
                    f"plugin {plugin!r} registered {self.kind} {name!r} with factory "
                    f"{factory!r}: expected a callable or a reference 'package.module:function'"
                )
            factory = LazyFactory(factory, kind=self.kind, name=normalize_name(name), plugin=plugin)
        if not callable(factory):
            raise PluginError(
                f"plugin {plugin!r} registered {self.kind} {name!r} with factory "
                f"{factory!r}, which is not callable"
            )
        canonical = normalize_name(name)
        alias_names = tuple(normalize_name(a) for a in aliases)
        for alias in alias_names:
            if not _NAME_PATTERN.match(alias):
                raise PluginError(
                    f"plugin {plugin!r} registered {self.kind} {canonical!r} with invalid alias "
                    f"{alias!r} (expected letters, digits, '-' or '_')"
                )
        for taken in (canonical, *alias_names):
            owner = self._owner(taken)
            if owner is not None:
                raise PluginError(
                    f"plugin {plugin!r} registered {self.kind} {taken!r}, "
                    f"which plugin {owner.plugin!r} already registered"
                )
        spec = ComponentSpec(
            kind=self.kind,
            name=canonical,
            factory=factory,
            description=description if description is not None else _describe(_loaded(factory)),
            plugin=plugin,
            aliases=alias_names,
        )
        self._specs[canonical] = spec
        for alias in alias_names:
            self._aliases[alias] = canonical
        return spec

    def _owner(self, name: str) -> ComponentSpec | None:
        if name in self._specs:
            return self._specs[name]
        if name in self._aliases:
            return self._specs[self._aliases[name]]
        return None

    def unregister_plugin(self, plugin: str) -> None:
        """Remove every component that ``plugin`` registered."""
        for name in [n for n, s in self._specs.items() if s.plugin == plugin]:
            del self._specs[name]
        for alias in [a for a, n in self._aliases.items() if n not in self._specs]:
            del self._aliases[alias]

    def get(self, name: str) -> ComponentSpec:
        """The component called ``name`` (or one of its aliases)."""
        if not isinstance(name, str):
            raise InvalidValueError(f"{self.kind} name", name, "a string")
        spec = self._owner(normalize_name(name))
        if spec is None:
            raise UnknownComponentError(self.kind, name, self.names())
        return spec

    def create(self, name: str, /, **options: Any) -> Any:
        """Build the component called ``name`` with keyword ``options``.

        An option the factory does not take fails with a message listing those it does.
        """
        spec = self.get(name)
        check_options(spec, options)
        return spec.factory(**options)

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(self._specs)

    def specs(self) -> list[ComponentSpec]:
        """Registered components, sorted by name."""
        return [self._specs[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._owner(normalize_name(name)) is not None

    def __len__(self) -> int:
        return len(self._specs)


def check_options(spec: ComponentSpec, options: Mapping[str, Any]) -> None:
    """Raise a clear error for an option that ``spec``'s factory does not take."""
    accepted = spec.option_names()
    if accepted is None:
        return
    for option in options:
        if option not in accepted:
            raise InvalidValueError(
                f"option for {spec.kind} {spec.name!r}",
                option,
                f"one of: {', '.join(accepted) if accepted else '(no options)'}",
            )
