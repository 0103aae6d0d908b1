"""Plugin-system holes a third-party plugin written from the guide ran into, each reproduced.

Every plugin here is a real installed distribution (``tests.core.fake_dist``), found
through its ``fflib`` entry point exactly as a pip-installed one is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ffcore
from ffcore.checkpoint import load_checkpoint, read_checkpoint
from ffcore.cli.main import cli
from ffcore.config import TrainConfig
from ffcore.errors import CheckpointError
from ffcore.plugin_manager import configure_plugins, get_plugin_manager
from ffcore.runs import save_run
from ffcore.training import build_run, train
from tests.core.fake_dist import ABS_GOODNESS, install_fake_distribution

RAISING_COMMANDS = """
import click
import ffcore

def nudge():
    '''A goodness-free preset.'''
    return {}

@ffcore.hookimpl
def fflib_register_presets(register):
    register("nudge", nudge)

@ffcore.hookimpl
def fflib_register_commands(cli):
    @cli.command("half-made")
    def half_made():
        '''Added before the hook raised.'''
    raise RuntimeError("command setup blew up")
"""

HIJACKING_DEBUG = """
import click
import ffcore

@ffcore.hookimpl
def fflib_register_commands(cli):
    @cli.command("debug")
    def debug():
        '''Not ffdebug's.'''
        click.echo("hijacked")
"""

HIJACKING_TRAIN = HIJACKING_DEBUG.replace('"debug"', '"train"')

MISSPELT_ARGUMENT = """
import ffcore

@ffcore.hookimpl
def fflib_register_goodness(registr):
    registr("never", lambda: None)
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    plugins: dict[str, str],
    version: str = "1.0",
) -> None:
    """One distribution ``name`` declaring each plugin (entry-point name -> source)."""
    modules = {
        f"{name.replace('-', '_')}_{ep.replace('-', '_')}": src for ep, src in plugins.items()
    }
    install_fake_distribution(
        tmp_path / name,
        monkeypatch,
        name=name,
        version=version,
        modules=modules,
        entry_points=dict(zip(plugins, modules, strict=True)),
    )


def error_of(plugin: str) -> str:
    """The error of ``plugin``, which must be listed as broken."""
    info = get_plugin_manager().plugin(plugin)
    assert info is not None and info.error is not None, info
    return info.error


def test_a_raising_command_hook_breaks_its_plugin_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "fflib-cmds", {"cmds": RAISING_COMMANDS})
    assert "command setup blew up" in error_of("cmds")
    assert "half-made" not in get_plugin_manager().commands()
    assert "nudge" not in ffcore.list_presets()  # rolled back with the rest
    listing = invoke("list-plugins")
    assert "cmds (fflib-cmds 1.0)\n  ERROR: RuntimeError: command setup blew up" in listing.output
    listed = {p["name"]: p for p in json.loads(invoke("list-plugins", "--json").output)}
    assert "command setup blew up" in listed["cmds"]["error"]
    assert listed["cmds"]["commands"] == [] and listed["cmds"]["components"] == {}
    assert "No such command 'half-made'" in invoke("half-made").output


def test_a_plugin_command_cannot_take_another_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "fflib-hijack", {"hijack": HIJACKING_DEBUG})
    assert "added command 'debug', which plugin 'ffdebug' already added" in error_of("hijack")
    help_text = invoke("debug", "--help").output
    assert "Trace a saved model into TensorBoard" in help_text and "hijacked" not in help_text
    listing = invoke("list-plugins").output
    assert "hijack (fflib-hijack 1.0)\n  ERROR: PluginError: plugin 'hijack' added" in listing


def test_a_plugin_command_cannot_take_a_core_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "fflib-hijack", {"hijack": HIJACKING_TRAIN})
    assert "added command 'train', which is one of ff's own commands" in error_of("hijack")
    assert "Train a model" in invoke("train", "--help").output


def test_the_first_of_two_commands_with_one_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = HIJACKING_DEBUG.replace('"debug"', '"hello"').replace("hijacked", "first")
    second = first.replace("first", "second")
    install(tmp_path, monkeypatch, "fflib-hello", {"hello-a": first, "hello-b": second})
    assert invoke("hello").output == "first\n"
    assert "which plugin 'hello-a' already added" in error_of("hello-b")


def test_plugin_commands_are_collected_once(manager: ffcore.FFPluginManager) -> None:
    import click

    calls: list[int] = []

    class Greeter:
        @ffcore.hookimpl
        def fflib_register_commands(self, cli: click.Group) -> None:
            calls.append(1)

            @cli.command("hello")
            def hello() -> None:
                """Say hello."""
                click.echo("hello")

    manager.register(Greeter(), name="greeter")
    for _ in range(3):
        assert invoke("hello").output == "hello\n"
        assert "hello" in invoke("--help").output
    assert calls == [1]


def test_a_second_entry_point_with_a_taken_name_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "fflib-one", {"abs-goodness": ABS_GOODNESS})
    install(tmp_path, monkeypatch, "fflib-two", {"abs-goodness": ABS_GOODNESS})
    plugins = [p for p in get_plugin_manager().plugins() if p.name == "abs-goodness"]
    assert [(p.distribution, p.error is None) for p in plugins] == [
        ("fflib-one", True),
        ("fflib-two", False),
    ]
    assert "has the name of plugin 'abs-goodness' (distribution 'fflib-one')" in str(
        plugins[1].error
    )
    listing = invoke("list-plugins").output
    heading = "abs-goodness (fflib-two 1.0)\n  ERROR: not loaded: entry point 'abs-goodness'"
    assert f"{heading} of distribution 'fflib-two'" in listing


def _train_with_abs_sum(path: Path) -> Path:
    config = TrainConfig(preset="plain", layers=[8], epochs=1, device="cpu", goodness="abs-sum")
    run = build_run(config)
    return save_run(run, path, train(run))


def test_a_checkpoint_names_the_plugin_of_a_missing_goodness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "fflib-abs-goodness", {"abs-goodness": ABS_GOODNESS})
    path = _train_with_abs_sum(tmp_path / "abs.pt")
    sources = read_checkpoint(path)["meta"]["component_sources"]
    assert sources["goodness"] == {
        "name": "abs-sum",
        "plugin": "abs-goodness",
        "distribution": "fflib-abs-goodness",
    }
    assert sources["model"]["plugin"] == "ffnet" and sources["dataset"]["name"] == "digits"
    configure_plugins(disabled=["abs-goodness"])
    expected = (
        "needs goodness 'abs-sum' from plugin 'abs-goodness' "
        "(distribution 'fflib-abs-goodness'), which is not installed or is disabled"
    )
    with pytest.raises(CheckpointError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(path)
    for command in (["eval", str(path)], ["train", "--resume", str(path), "--epochs", "2"]):
        result = invoke("-d", "abs-goodness", *command)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "did you mean" not in result.output


def test_a_checkpoint_without_sources_still_names_the_missing_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What checkpoints written before sources were recorded get."""
    install(tmp_path, monkeypatch, "fflib-abs-goodness", {"abs-goodness": ABS_GOODNESS})
    path = _train_with_abs_sum(tmp_path / "abs.pt")
    payload = read_checkpoint(path)
    del payload["meta"]["component_sources"]
    import torch

    payload["meta"] = json.dumps(payload["meta"])
    torch.save(payload, path)
    configure_plugins(disabled=["abs-goodness"])
    with pytest.raises(CheckpointError, match="needs goodness 'abs-sum', which no enabled plugin"):
        load_checkpoint(path)


def test_disabling_an_unknown_plugin_is_refused() -> None:
    result = invoke("-d", "typo", "list-plugins")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --disable-plugin: unknown plugin 'typo'")
    assert "ffnet" in lines[0] and "ffdebug" in lines[0]
    close = invoke("-d", "tryal", "list-plugins")
    assert close.exit_code == 2 and "did you mean 'tryall'" in close.output
    assert invoke("-d", "TRYALL", "list-plugins").exit_code == 0  # names normalise as always


def test_disabled_plugins_are_listed_as_disabled() -> None:
    text = invoke("-d", "tryall", "list-plugins").output
    assert "tryall (fflib " in text and "  disabled" in text.split("tryall (fflib ")[1]
    data = {
        p["name"]: p for p in json.loads(invoke("-d", "tryall", "list-plugins", "--json").output)
    }
    assert data["tryall"]["disabled"] is True and data["tryall"]["components"] == {}
    assert data["ffnet"]["disabled"] is False
    only = json.loads(invoke("--builtin-plugins-only", "list-plugins", "--json").output)
    third_party = [p for p in only if not p["builtin"]]
    assert third_party and all(p["disabled"] for p in third_party)


def test_a_misspelt_hook_argument_shows_its_reason_in_the_text_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, monkeypatch, "fflib-typo", {"typo": MISSPELT_ARGUMENT})
    listing = invoke("list-plugins").output
    assert (
        "typo (fflib-typo 1.0)\n  ERROR: PluginError: hook fflib_register_goodness has no "
        "argument 'registr' (its arguments: register)"
    ) in listing
    assert "never" not in ffcore.list_goodness()


def test_an_unhashable_observer_does_not_break_later_registrations(
    manager: ffcore.FFPluginManager,
) -> None:
    from dataclasses import dataclass, field

    @dataclass
    class Observer:  # a dataclass: compares by value, so it is unhashable
        seen: list[int] = field(default_factory=list)

        @ffcore.hookimpl
        def fflib_epoch_end(self, epoch: int) -> None:
            self.seen.append(epoch)

    class Presets:
        @ffcore.hookimpl
        def fflib_register_presets(self, register: ffcore.hookspecs.Register) -> None:
            register("later", lambda: {"epochs": 1})

    observer = Observer()
    manager.register(observer, name="observer")
    manager.register(Presets(), name="later-presets")
    assert ffcore.get_component("preset", "later").plugin == "later-presets"
    train(build_run(TrainConfig(layers=[8], epochs=2, device="cpu")))
    assert observer.seen == [0, 1]
