"""One resolution path: Python's TrainConfig and ff train start from the same preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ffcore
from ffcore.cli.main import cli
from ffcore.config import TrainConfig, build_config
from ffcore.errors import ConfigError
from ffcore.recipes import GIVEN, merge_settings, resolve_config
from ffcore.training import build_run


def test_python_gets_the_recipe_the_cli_applies() -> None:
    resolved = resolve_config(TrainConfig(dataset="digits", model="ffc"))
    recipe = ffcore.get_preset("digits")
    assert (resolved.preset, resolved.reason) == ("digits", "dataset recipe")
    config = resolved.config
    assert config.loss == recipe["loss"] == "symba" and config.layers == recipe["layers"]
    assert config.model_options == recipe["model_options"] and config.preset == "digits"
    assert resolved.sources["loss"] == "preset 'digits'" and resolved.sources["model"] == GIVEN
    assert resolved.sources["batch_size"] == "default"


def test_build_run_resolves_and_records_the_preset() -> None:
    run = build_run(TrainConfig(dataset="digits", model="ffc", layers=[8], device="cpu"))
    assert run.resolved is not None and run.resolved.preset == "digits"
    assert run.config.loss == "symba" and run.config.layers == [8]  # given wins
    assert run.resolved.describe() == (
        "settings: the digits recipe (preset 'digits'); --preset plain for FFLib's generic defaults"
    )


def test_another_model_starts_from_the_generic_defaults_and_says_why() -> None:
    resolved = resolve_config(TrainConfig(model="ffnet"))
    assert resolved.preset is None and resolved.config.loss is None
    assert resolved.describe() == (
        "settings: FFLib's generic defaults "
        "(data set 'digits''s recipe is for model 'ffc', not 'ffnet')"
    )


def test_a_preset_named_in_python_is_applied() -> None:
    resolved = resolve_config(TrainConfig(preset="seed", epochs=2))
    seed = ffcore.get_preset("seed")
    assert resolved.config.lr == seed["lr"] and resolved.config.goodness == "mean-squares"
    assert resolved.config.epochs == 2 and resolved.describe() is None


def test_given_settings_are_remembered_positionally_and_by_name() -> None:
    assert TrainConfig("seed", "ffnet").given() == {"preset": "seed", "model": "ffnet"}
    assert TrainConfig(epochs=60).given() == {"epochs": 60}  # given, though the default
    config = TrainConfig.from_dict({"layers": [4], "tensorboard": "tb"})
    assert config.given() == {"layers": [4], "tensorboard": "tb"}


def test_a_setting_given_equal_to_its_default_still_wins_over_the_recipe() -> None:
    assert resolve_config(TrainConfig(dataset="fashion-mnist", epochs=60)).config.epochs == 60
    assert resolve_config(TrainConfig(dataset="fashion-mnist")).config.epochs == 30


def test_resolving_twice_changes_nothing() -> None:
    once = resolve_config(TrainConfig(dataset="digits", epochs=3)).config
    twice = resolve_config(once).config
    assert twice == once and twice.to_dict() == once.to_dict()


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        # later wins, option tables merge key by key
        (
            ({"epochs": 1, "model_options": {"a": 1}}, {"model_options": {"b": 2}}),
            {"epochs": 1, "model_options": {"a": 1, "b": 2}},
        ),
        # -O model.layers=[64] on top of a recipe's layers: one setting, the later wins
        (
            ({"layers": [500, 500]}, {"model_options": {"layers": [64], "norm": "l2"}}),
            {"layers": [64], "model_options": {"norm": "l2"}},
        ),
        # --layers 64 on top of a recipe's model_options.layers
        (
            ({"model_options": {"layers": [500], "norm": "l2"}}, {"layers": [64]}),
            {"layers": [64], "model_options": {"norm": "l2"}},
        ),
    ],
)
def test_merge_settings_is_the_one_precedence_rule(
    sources: tuple[dict[str, Any], ...], expected: dict[str, Any]
) -> None:
    assert merge_settings(*sources) == expected


def test_one_source_setting_both_spellings_differently_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"lr is set twice, to 0.1 and as model_options.lr"):
        merge_settings({"lr": 0.1, "model_options": {"lr": 0.2}})


def test_python_and_the_file_follow_the_same_rule() -> None:
    config = resolve_config(TrainConfig(model_options={"layers": [64]})).config
    assert config.layers == [64] and "layers" not in config.model_options


def test_a_model_option_given_on_the_command_line_wins_over_the_recipe(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["train", "-O", "model.layers=[64]", "-e", "1", "--json", "-o", str(tmp_path / "m.pt")],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["model"] == "ffc" and summary["config"]["preset"] == "digits"
    assert summary["config"]["layers"] == [64]
    assert "layers" not in summary["config"]["model_options"]
    assert summary["parameters"] < 20_000  # one layer of 64, not the recipe's 2x500
    assert summary["preset_reason"] == "dataset recipe"


def test_the_cli_and_python_build_the_same_config(tmp_path: Path) -> None:
    out = str(tmp_path / "same.pt")
    result = CliRunner().invoke(
        cli, ["train", "--dataset", "digits", "-e", "1", "--layers", "16", "--json", "-o", out]
    )
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)["config"]
    python = build_run(TrainConfig(dataset="digits", epochs=1, layers=[16], out=out))
    assert python.config.to_dict() == from_cli


def test_build_config_without_a_preset_resolves_like_ff_train() -> None:
    run = build_run(build_config(overrides={"layers": [8], "epochs": 1, "device": "cpu"}))
    assert run.names["model"] == "ffc" and run.resolved is not None
    assert run.resolved.reason == "dataset recipe"


def test_help_shows_the_recipes_defaults() -> None:
    # the help is wrapped at hyphens too: join the lines back
    text = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split()).replace("- ", "-")
    assert (
        "Training epochs. [default: the data set's recipe (cifar10: 30; digits: 60; "
        "fashion-mnist: 30; mnist: 30), else 60]" in text
    )
    assert (
        "[default: the data set's recipe (cifar10: ffc; digits: ffc; fashion-mnist: ffc; "
        "mnist: ffc), else ffnet]" in text
    )
    assert "(cifar10: 3072; digits: 100,100; fashion-mnist: 2000; mnist: 2000), else" in text
    assert "Batch size. [default: 128]" in text
