"""Named components and the registries that hold them (one registry per kind).

A component is a factory with a name, a one-line description and typed keyword options,
registered by a plugin. Names are kebab case (``fashion-mnist``, ``sum-squares``); lookups
accept underscores and any letter case, so ``Fashion_MNIST`` finds ``fashion-mnist``.
"""

from __future__ import annotations

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
        factory: Callable[..., Any],
        *,
        description: str | None = None,
        aliases: Iterable[str] = (),
        plugin: str = "python",
    ) -> ComponentSpec:
        """Add a component; its description defaults to the factory docstring's first line."""
        if not isinstance(name, str) or not _NAME_PATTERN.match(normalize_name(name)):
            raise PluginError(
                f"plugin {plugin!r} registered a {self.kind} with invalid name {name!r} "
                "(expected letters, digits, '-' or '_', starting with a letter or digit)"
            )
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
            description=description if description is not None else _describe(factory),
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
