"""The preset a run starts from: the one named, else the data set's recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import ffcore
from ffcore.cli.main import cli
from ffcore.config import build_config, read_config_file
from ffcore.errors import UnknownComponentError
from ffcore.interfaces import Batch
from ffcore.plugin_manager import FFPluginManager
from ffcore.recipes import PLAIN, starting_preset
from ffcore.training import build_run, train
from ffplugins.dense import FFDense
from ffplugins.ffc import FFC
from tests.core.usage_helpers import write_mnist_layout

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def test_a_named_preset_is_used_as_it_is() -> None:
    start = starting_preset({}, {"preset": "seed", "dataset": "fashion-mnist"})
    assert (start.name, start.reason) == ("seed", "named")
    assert start.settings == ffcore.get_preset("seed")


def test_the_config_file_can_name_the_preset_and_options_override_it() -> None:
    assert starting_preset({"preset": "seed"}, {}).name == "seed"
    assert starting_preset({"preset": "seed"}, {"preset": PLAIN}).name == PLAIN


def test_plain_holds_no_settings() -> None:
    start = starting_preset({}, {"preset": PLAIN})
    assert start.settings == {}


def test_an_unknown_named_preset_is_a_clear_error() -> None:
    with pytest.raises(UnknownComponentError, match="nope"):
        starting_preset({}, {"preset": "nope"})


@pytest.mark.parametrize(
    ("file", "overrides", "recipe"),
    [
        ({}, {}, "digits"),  # the default data set
        ({}, {"dataset": "fashion-mnist"}, "fashion-mnist"),
        ({}, {"dataset": "fashion_mnist"}, "fashion-mnist"),  # names are normalised
        ({"dataset": "fashion-mnist"}, {}, "fashion-mnist"),
        ({"dataset": "digits"}, {"model": "ff-c"}, "digits"),  # an alias of the recipe's model
    ],
)
def test_the_data_sets_recipe_applies_when_nothing_is_named(
    file: dict[str, str], overrides: dict[str, str], recipe: str
) -> None:
    start = starting_preset(file, overrides)
    assert (start.name, start.reason) == (recipe, "dataset recipe")
    assert start.settings == {**ffcore.get_preset(recipe), "preset": recipe}


def test_another_model_than_the_recipes_gets_the_generic_defaults() -> None:
    start = starting_preset({}, {"dataset": "digits", "model": "ffnet"})
    assert start.name is None and start.settings == {}
    assert "'ffc'" in start.reason and "'ffnet'" in start.reason


def test_a_models_recipe_for_the_data_set_wins_when_that_model_is_chosen(
    manager: FFPluginManager,
) -> None:
    class Recipes:
        @staticmethod
        @ffcore.hookimpl
        def fflib_register_presets(register: ffcore.hookspecs.Register) -> None:
            register("ffnet-digits", lambda: {"model": "ffnet", "layers": [64]})
            register("ffnet-xor", lambda: {"model": "ffnet", "layers": [8]})

    manager.register(Recipes, name="recipes")
    start = starting_preset({}, {"dataset": "digits", "model": "ffnet"})
    assert (start.name, start.reason) == ("ffnet-digits", "model recipe")
    assert start.settings == {"model": "ffnet", "layers": [64], "preset": "ffnet-digits"}
    assert starting_preset({}, {"dataset": "xor", "model": "ffnet"}).name == "ffnet-xor"
    assert starting_preset({}, {"dataset": "digits"}).name == "digits"  # no model chosen
    assert starting_preset({}, {"dataset": "digits", "model": "ffc"}).name == "digits"
    assert starting_preset({}, {"dataset": "digits", "model": "ffnet", "preset": "plain"}).name == (
        "plain"
    )


def test_a_data_set_without_a_recipe_gets_the_generic_defaults() -> None:
    start = starting_preset({}, {"dataset": "xor"})
    assert start.name is None and start.settings == {}
    assert "xor" in start.reason


@pytest.mark.parametrize(
    ("preset", "config"),
    [
        ("digits", "digits.toml"),
        ("fashion-mnist", "fashion_mnist.toml"),
        ("fashion-mnist-ff", "fashion_mnist_ff.toml"),
        ("hinton-mnist", "hinton_mnist.toml"),
        ("mnist", "mnist.toml"),
        ("cifar10", "cifar10.toml"),
    ],
)
def test_recipes_hold_the_settings_of_their_config_files(preset: str, config: str) -> None:
    assert ffcore.get_preset(preset) == read_config_file(CONFIGS / config)


def test_recipes_name_registered_components() -> None:
    for name in ("digits", "fashion-mnist", "fashion-mnist-ff", "hinton-mnist", "mnist", "cifar10"):
        settings = ffcore.get_preset(name)
        assert settings["model"] in ffcore.list_models()
        assert settings["dataset"] in ffcore.list_datasets()
        assert settings["negatives"] in ffcore.list_negatives()
        assert settings.get("loss", "softplus-threshold") in ffcore.list_losses()


def test_every_image_data_set_has_its_recipe() -> None:
    images = {"digits", "mnist", "fashion-mnist", "cifar10"}
    assert images <= set(ffcore.list_datasets())
    for name in images:
        assert starting_preset({}, {"dataset": name}).name == name


def _train(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        cli, ["train", "--layers", "16,16", "--epochs", "1", "--device", "cpu", "--json", *args]
    )
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.output)
    return summary


def test_ff_train_starts_from_the_data_sets_recipe(tmp_path: Path) -> None:
    summary = _train("--out", str(tmp_path / "r.pt"))
    config = summary["config"]
    assert isinstance(config, dict)
    assert summary["model"] == "ffc" and config["preset"] == "digits"
    assert config["loss"] == "symba" and config["model_options"]["schedule"] == "joint"
    assert config["layers"] == [16, 16]  # options still win over the recipe


def test_ff_train_preset_plain_keeps_the_generic_defaults(tmp_path: Path) -> None:
    summary = _train("--preset", PLAIN, "--out", str(tmp_path / "p.pt"))
    config = summary["config"]
    assert isinstance(config, dict)
    assert summary["model"] == "ffnet" and config["loss"] is None and config["preset"] == PLAIN


def test_ff_train_says_which_recipe_it_started_from(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["train", "--layers", "8", "--epochs", "1", "--out", str(tmp_path / "s.pt")]
    )
    assert result.exit_code == 0, result.output
    assert "the digits recipe" in result.output and "--preset plain" in result.output


def test_hinton_mnist_settings_build_and_train_on_small_data() -> None:
    settings = read_config_file(CONFIGS / "hinton_mnist.toml")
    small = {"dataset": "digits", "layers": [32, 32, 32, 32], "epochs": 1, "device": "cpu"}
    run = build_run(build_config(file=settings, overrides=small))
    assert run.names["model"] == "ffc" and run.names["probe"] == "tryall"
    assert run.names["negatives"] == "neutral"
    assert isinstance(run.model, FFC) and run.model.layer_range == (1, 4)
    metrics = train(run)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["epochs"] == 1


def test_ff_train_dataset_mnist_starts_from_its_recipe(tmp_path: Path) -> None:
    write_mnist_layout(tmp_path / "data")
    data = ["--data-root", str(tmp_path / "data"), "--no-download"]
    summary = _train("--dataset", "mnist", *data, "--out", str(tmp_path / "m.pt"))
    config = summary["config"]
    assert isinstance(config, dict)
    assert summary["model"] == "ffc" and config["preset"] == "mnist"
    assert (config["loss"], config["negatives"]) == ("softmax", "inverse")
    assert config["model_options"]["ff_epochs"] == 20 and config["epochs"] == 1
    assert config["layers"] == [16, 16]  # options still win over the recipe


def test_cifar10_recipe_builds_and_trains_on_colour_images() -> None:
    settings = ffcore.get_preset("cifar10")
    model = ffcore.create_model(
        settings["model"],
        input_shape=(3, 32, 32),
        num_classes=10,
        layers=[24],
        lr=settings["lr"],
        goodness=settings["goodness"],
        loss=settings["loss"],
        **settings["model_options"],
    )
    assert isinstance(model, FFC)
    first = model.layers[0]
    assert isinstance(first, FFDense)
    assert first.linear.in_features == 3 * 32 * 32 + 10  # image and label code
    before = first.linear.weight.detach().clone()
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6)
    loss = model.train_batch(Batch(x, y), ffcore.create_negatives(settings["negatives"]))
    assert torch.isfinite(loss)
    assert not torch.equal(before, first.linear.weight)  # the FF layer stepped
    assert model.logits(x).shape == (6, 10)
