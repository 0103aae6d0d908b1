"""One plugin manager per process: every path reads it, ``ff`` configures it once."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import ffcore
from ffcore import checkpoint, config, hookspecs, recipes, registry, run_data, runs, training
from ffcore.cli.main import cli
from ffcore.errors import UnknownComponentError
from ffcore.plugin_manager import configure_plugins, get_plugin_manager
from ffdebug import debug
from tests.core.fake_dist import ABS_GOODNESS, install_fake_distribution

ENTRY_POINTS: list[Callable[..., Any]] = [
    training.build_run,
    runs.resume_run,
    runs.save_run,
    checkpoint.load_checkpoint,
    checkpoint.save_checkpoint,
    recipes.starting_preset,
    registry.build,
    run_data.load_saved_data,
    config.build_config,
    debug.trace_checkpoint,
    debug.load_split,
]


def test_core_commands_are_the_ones_plugins_may_not_take() -> None:
    assert set(cli.commands) == hookspecs.CORE_COMMANDS


@pytest.mark.parametrize("function", ENTRY_POINTS, ids=lambda f: f.__qualname__)
def test_no_function_takes_a_plugin_manager(function: Callable[..., Any]) -> None:
    assert "plugins" not in inspect.signature(function).parameters


def test_a_run_reaches_plugins_only_through_the_process_manager() -> None:
    assert "plugins" not in {f.name for f in training.TrainingRun.__dataclass_fields__.values()}


@pytest.fixture
def abs_goodness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_distribution(
        tmp_path,
        monkeypatch,
        name="fflib-abs",
        version="1.0",
        modules={"ff_abs_goodness": ABS_GOODNESS},
        entry_points={"abs-goodness": "ff_abs_goodness"},
    )


def test_disabling_reaches_components_built_inside_factories(abs_goodness: None) -> None:
    layer = ffcore.create_layer("ffdense", in_features=4, out_features=3, goodness="abs-sum")
    assert layer.goodness(torch.tensor([[1.0, -2.0, 0.5]])).tolist() == [3.5]  # |.| summed
    configure_plugins(disabled=["abs-goodness"])
    with pytest.raises(UnknownComponentError, match="unknown goodness 'abs-sum'"):
        ffcore.create_layer("ffdense", in_features=4, out_features=3, goodness="abs-sum")
    with pytest.raises(UnknownComponentError, match="unknown goodness 'abs-sum'"):
        training.build_run(config.TrainConfig(layers=[8], epochs=1, goodness="abs-sum"))


def test_ff_configures_the_manager_before_the_subcommand(abs_goodness: None) -> None:
    result = CliRunner().invoke(
        cli, ["-d", "abs-goodness", "train", "--goodness", "abs-sum", "--epochs", "0"]
    )
    assert result.exit_code == 2 and "unknown goodness 'abs-sum'" in result.output
    assert get_plugin_manager().plugin("abs-goodness").disabled  # type: ignore[union-attr]
    preset = CliRunner().invoke(cli, ["-d", "presets", "train", "--preset", "seed"])
    assert preset.exit_code == 2 and "unknown preset 'seed'" in preset.output


def test_the_cli_keeps_a_manager_configured_the_same_way(manager: ffcore.FFPluginManager) -> None:
    class Extra:
        @ffcore.hookimpl
        def fflib_register_presets(self, register: ffcore.hookspecs.Register) -> None:
            register("extra", lambda: {"epochs": 1})

    manager.register(Extra(), name="extra")
    assert configure_plugins(reuse=True) is manager
    listed = CliRunner().invoke(cli, ["list-plugins"]).output
    assert "preset     extra" in listed
    assert get_plugin_manager() is manager
    CliRunner().invoke(cli, ["-d", "tryall", "list-plugins"])
    assert get_plugin_manager() is not manager  # other options: a manager configured for them
    assert "extra" not in ffcore.list_presets()
