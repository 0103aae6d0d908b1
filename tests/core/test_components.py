"""Registries: names, aliases, option checking and clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from ffcore.components import Registry, normalize_name
from ffcore.errors import InvalidValueError, PluginError, UnknownComponentError


def make_widget(size: int = 3, *, colour: str = "red") -> dict[str, Any]:
    """A widget for tests.

    More text that is not part of the description.
    """
    return {"size": size, "colour": colour}


def anything(**options: Any) -> dict[str, Any]:
    return options


def test_normalize_name() -> None:
    assert normalize_name(" Fashion_MNIST ") == "fashion-mnist"


def test_register_and_create_with_options() -> None:
    registry = Registry("widget")
    spec = registry.register("big_widget", make_widget, aliases=["BW"], plugin="p")
    assert spec.name == "big-widget"
    assert spec.description == "A widget for tests."
    assert spec.aliases == ("bw",)
    assert registry.create("Big-Widget", size=5) == {"size": 5, "colour": "red"}
    assert registry.create("bw", colour="blue")["colour"] == "blue"
    assert registry.names() == ["big-widget"]
    assert "BIG_WIDGET" in registry and "bw" in registry and "nope" not in registry


def test_unknown_option_names_accepted_options() -> None:
    registry = Registry("widget")
    registry.register("w", make_widget)
    with pytest.raises(InvalidValueError) as info:
        registry.create("w", colour="red", weight=2)
    message = str(info.value)
    assert "'weight'" in message and "size" in message and "colour" in message
    registry.register("any", anything)
    assert registry.create("any", weight=2) == {"weight": 2}


def test_unknown_name_suggests_close_names() -> None:
    registry = Registry("model")
    for name in ("ffnet", "ffc", "ffrnn"):
        registry.register(name, make_widget)
    with pytest.raises(UnknownComponentError) as info:
        registry.get("ffnt")
    message = str(info.value)
    assert message.startswith("unknown model 'ffnt'")
    assert "did you mean 'ffnet'" in message
    assert "available model names: ffc, ffnet, ffrnn" in message


def test_duplicate_and_invalid_registrations_are_refused() -> None:
    registry = Registry("layer")
    registry.register("dense", make_widget, aliases=["linear"], plugin="a")
    with pytest.raises(PluginError, match="plugin 'a' already registered"):
        registry.register("Dense", make_widget, plugin="b")
    with pytest.raises(PluginError, match="already registered"):
        registry.register("other", make_widget, aliases=["linear"], plugin="b")
    with pytest.raises(PluginError, match="invalid name"):
        registry.register("has space", make_widget, plugin="b")
    with pytest.raises(PluginError, match="not callable"):
        registry.register("thing", 42, plugin="b")  # type: ignore[arg-type]


def test_unregister_plugin_removes_names_and_aliases() -> None:
    registry = Registry("layer")
    registry.register("dense", make_widget, aliases=["linear"], plugin="a")
    registry.register("conv", make_widget, plugin="b")
    registry.unregister_plugin("a")
    assert registry.names() == ["conv"]
    assert "linear" not in registry
