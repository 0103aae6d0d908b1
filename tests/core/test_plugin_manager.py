"""The plugin manager loads real entry points, isolates broken plugins, honours disables."""

from __future__ import annotations

from pathlib import Path

import pytest

import ffcore
from ffcore import plugin_manager
from ffcore.errors import PluginError, UnknownComponentError
from ffcore.plugin_manager import FFPluginManager
from tests.core.fake_dist import ABS_GOODNESS, install_fake_distribution

GOOD_PLUGIN = ABS_GOODNESS

BROKEN_IMPORT = """
raise ImportError("this plugin needs a library that is not installed")
"""

BROKEN_HOOK = """
import ffcore

@ffcore.hookimpl
def fflib_register_losses(register):
    register("half-registered", lambda: None)
    raise RuntimeError("registration blew up")
"""

GARBAGE_HOOK = """
import ffcore

@ffcore.hookimpl
def fflib_register_probes(register):
    return ["not", "how", "this", "works"]
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_distribution(
        tmp_path / "site",
        monkeypatch,
        name="fflib-demo",
        version="1.2.3",
        modules={
            "ffdemo_good": GOOD_PLUGIN,
            "ffdemo_broken": BROKEN_IMPORT,
            "ffdemo_hook": BROKEN_HOOK,
            "ffdemo_garbage": GARBAGE_HOOK,
        },
        entry_points={
            "demo-good": "ffdemo_good",
            "demo-broken": "ffdemo_broken",
            "demo-hook": "ffdemo_hook",
            "demo-garbage": "ffdemo_garbage",
        },
    )


def test_builtins_load_through_entry_points(manager: FFPluginManager) -> None:
    infos = {info.name: info for info in manager.plugins()}
    for name in ("ffdense", "ffnet", "goodness", "losses", "tryall", "negatives", "datasets"):
        assert name in infos, name
        assert infos[name].builtin
        assert infos[name].distribution == "fflib"
        assert infos[name].error is None
    assert infos["ffdense"].components == {"layer": ["ffdense"]}
    assert "ffnet" in manager.registry("model")


def test_third_party_plugin_is_found_with_its_distribution(third_party: None) -> None:
    manager = plugin_manager.get_plugin_manager()
    info = manager.plugin("demo-good")
    assert info is not None
    assert (info.distribution, info.version, info.builtin) == ("fflib-demo", "1.2.3", False)
    assert info.components == {"goodness": ["abs-sum"]}
    goodness = ffcore.create_goodness("abs-sum")
    import torch

    assert goodness(torch.tensor([[1.0, -2.0], [0.5, 0.0]])).tolist() == [3.0, 0.5]
    spec = ffcore.get_component("goodness", "abs-sum")
    assert spec.description == "Sum of absolute activity."
    assert spec.plugin == "demo-good"


def test_broken_plugins_are_listed_and_others_still_work(third_party: None) -> None:
    manager = plugin_manager.get_plugin_manager()
    broken = manager.plugin("demo-broken")
    assert broken is not None and broken.error is not None
    assert "ImportError" in broken.error and "not installed" in broken.error
    hook = manager.plugin("demo-hook")
    assert hook is not None and hook.error is not None and "blew up" in hook.error
    # what the failing hook registered before it raised is rolled back
    assert "half-registered" not in manager.registry("loss")
    garbage = manager.plugin("demo-garbage")
    assert garbage is not None and garbage.error is not None
    assert "returned" in garbage.error and "expected None" in garbage.error
    assert "abs-sum" in ffcore.list_goodness()
    assert "ffnet" in ffcore.list_models()


def test_disable_plugin_by_argument_and_environment(
    third_party: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = FFPluginManager(disabled=["demo-good", "tryall"])
    names = {p.name for p in manager.plugins() if not p.disabled}
    assert "demo-good" not in names and "tryall" not in names
    assert "abs-sum" not in manager.registry("goodness")
    assert "ffnet" in manager.registry("model")

    monkeypatch.setenv(plugin_manager.DISABLE_ENV, "demo-good, negatives")
    from_env = FFPluginManager()
    names = {p.name for p in from_env.plugins() if not p.disabled}
    assert "demo-good" not in names and "negatives" not in names and "tryall" in names


def test_builtin_only_skips_third_party(third_party: None, monkeypatch: pytest.MonkeyPatch) -> None:
    only = FFPluginManager(builtin_only=True)
    assert all(p.builtin for p in only.plugins() if not p.disabled)
    assert "abs-sum" not in only.registry("goodness")
    monkeypatch.setenv(plugin_manager.BUILTIN_ONLY_ENV, "1")
    assert all(p.builtin for p in FFPluginManager().plugins() if not p.disabled)
    unrestricted = FFPluginManager(use_environment=False).plugins()
    assert any(not p.builtin for p in unrestricted if not p.disabled)


def test_register_plugin_object_from_python(manager: FFPluginManager) -> None:
    class MyPlugin:
        @ffcore.hookimpl
        def fflib_register_presets(self, register: ffcore.hookspecs.Register) -> None:
            register("tiny", lambda: {"layers": [16]}, description="A tiny net.")

    info = manager.register(MyPlugin(), name="my-plugin")
    assert info.components == {"preset": ["tiny"]}
    assert ffcore.get_preset("tiny") == {"layers": [16]}
    with pytest.raises(PluginError, match="already registered"):
        manager.register(MyPlugin(), name="my-plugin")
    manager.unregister("my-plugin")
    with pytest.raises(UnknownComponentError):
        ffcore.get_preset("tiny")


def test_conflicting_names_mark_the_later_plugin_broken(manager: FFPluginManager) -> None:
    class Clash:
        @ffcore.hookimpl
        def fflib_register_models(self, register: ffcore.hookspecs.Register) -> None:
            register("ffnet", lambda **kw: None)

    with pytest.raises(PluginError, match="already registered"):
        manager.register(Clash(), name="clash")
    info = manager.plugin("clash")
    assert info is not None and info.error is not None
    assert manager.registry("model").get("ffnet").plugin == "ffnet"


def test_has_implementations_reflects_plugins(manager: FFPluginManager) -> None:
    assert not manager.has_implementations("fflib_layer_goodness")

    class Watcher:
        @ffcore.hookimpl
        def fflib_layer_goodness(self, layer_index: int) -> None:
            pass

    manager.register(Watcher(), name="watcher")
    assert manager.has_implementations("fflib_layer_goodness")


def test_unknown_kind_is_a_clear_error(manager: FFPluginManager) -> None:
    with pytest.raises(PluginError, match="unknown component kind 'optimizer'"):
        manager.registry("optimizer")


def test_misspelt_hook_marks_the_plugin_broken(manager: FFPluginManager) -> None:
    class Typo:
        @ffcore.hookimpl
        def fflib_register_goodnes(self, register: ffcore.hookspecs.Register) -> None:
            register("never", lambda: None)

    with pytest.raises(PluginError, match="unknown hook 'fflib_register_goodnes'"):
        manager.register(Typo(), name="typo")
    info = manager.plugin("typo")
    assert info is not None and info.error is not None and "known hooks" in info.error
    assert "never" not in manager.registry("goodness")
