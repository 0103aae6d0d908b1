"""Every option is read and type-checked once, against the type its owner declared.

``-O`` options are checked against their factory's parameters, booleans read in any
letter case, a string where a number is expected is an error (never a truthy value), a
number must be finite, and an option names its precedence layer like any setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ffcore.component_options import check_component_options, option_types
from ffcore.config import build_config, parse_value
from ffcore.errors import ConfigError, InvalidValueError
from ffcore.plugin_manager import get_plugin_manager
from ffcore.recipes import starting_preset
from tests.core.checkpoint_surgery import assert_one_clean_error, invoke

TINY = ["train", "--layers", "8", "--epochs", "1", "--device", "cpu", "--json"]


def run_config(tmp_path: Path, *args: str) -> dict[str, Any]:
    result = invoke(*TINY, "--out", str(tmp_path / "run.pt"), *args)
    assert result.exit_code == 0, result.output
    config: dict[str, Any] = json.loads(result.output)["config"]
    return config


def test_a_model_option_wins_over_the_recipe(tmp_path: Path) -> None:
    """The digits recipe sets layers = [100, 100]; ``-O model.layers=[64]`` overrides it."""
    recipe = starting_preset({}, {}).settings
    assert recipe["layers"] == [100, 100]
    config = build_config(preset=recipe, overrides={"model_options": {"layers": [64]}})
    assert config.layers == [64] and "layers" not in config.model_options
    assert config.model_kwargs()["layers"] == [64]
    result = invoke("train", "-O", "model.layers=[64]", "--epochs", "1", "--device", "cpu",
                    "--out", str(tmp_path / "r.pt"), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["parameters"] == (64 + 10) * 64 + 64 + 10 * 64 + 10


def test_the_same_setting_twice_in_one_place_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"layers is set twice, to \[32\] and as model_opt"):
        build_config(overrides={"layers": [32], "model_options": {"layers": [64]}})
    assert build_config(overrides={"layers": [32], "model_options": {"layers": [32]}}).layers == [
        32
    ]


@pytest.mark.parametrize("text", ["False", "false", "FALSE", "fAlSe"])
def test_booleans_read_in_any_letter_case(tmp_path: Path, text: str) -> None:
    assert parse_value(text) is False
    assert parse_value(text.lower().replace("false", "TrUe")) is True
    assert parse_value(f"'{text}'") == text  # quoted, it is a string (and refused below)
    config = run_config(tmp_path, "--preset", "plain", "-O", f"model.maximise={text}")
    assert config["model_options"] == {"maximise": False}


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            "negatives.temperature='x'",
            "invalid negatives.temperature: 'x' (expected a finite number)",
        ),
        (
            "negatives.temperature=inf",
            "invalid negatives.temperature: inf (expected a finite number)",
        ),
        (
            "negatives.temperature=nan",
            "invalid negatives.temperature: nan (expected a finite number)",
        ),
        ("model.maximise=yes", "invalid model.maximise: 'yes' (expected true or false)"),
        ("model.maximise=1", "invalid model.maximise: 1 (expected true or false)"),
        ("model.recompute='False'", "invalid model.recompute: 'False' (expected true or false)"),
        ("model.label_scale='big'", "invalid model.label_scale: 'big' (expected a finite number)"),
        ("model.threshold=inf", "invalid threshold: inf (expected a finite number)"),
    ],
)
def test_a_wrong_typed_option_is_refused_before_anything_runs(option: str, expected: str) -> None:
    result = invoke(*TINY, "--preset", "plain", "--negatives", "hard", "-O", option)
    assert_one_clean_error(result, expected)
    assert "model ffnet" not in result.output  # refused before the run was built


def test_a_data_set_option_of_the_wrong_type(tmp_path: Path) -> None:
    result = invoke(*TINY, "--dataset", "xor", "--preset", "plain", "-O", "dataset.noise='big'")
    assert_one_clean_error(result, "invalid dataset.noise: 'big' (expected a finite number)")
    config = run_config(tmp_path, "--dataset", "xor", "--preset", "plain", "-O", "dataset.noise=0")
    assert config["dataset_options"] == {"noise": 0}  # an integer where a float is declared


def test_option_types_come_from_the_factory_and_its_layer() -> None:
    registry = get_plugin_manager().registry
    types, rest = option_types(registry("negatives").get("hard").factory)
    assert types == {"temperature": float} and rest is None
    ffnet = registry("model").get("ffnet")
    check_component_options(ffnet, {"maximise": False, "layer_range": "1:", "lr": 0.1})
    # a layer option of ffdense's, reached through ffnet's **layer_options
    with pytest.raises(InvalidValueError, match=r"invalid model\.peer_norm: 'x' \(expected a fin"):
        check_component_options(ffnet, {"peer_norm": "x"})
    # ... or of the layer the options name
    with pytest.raises(InvalidValueError, match=r"invalid model\.beta: 'x'"):
        check_component_options(ffnet, {"layer": "ffrecurrent", "beta": "x"})
    check_component_options(ffnet, {"no_such_option": "x"})  # unknown: the factory says so


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_float_settings_are_finite(value: float) -> None:
    with pytest.raises(InvalidValueError, match="threshold"):
        build_config(overrides={"threshold": value})
