"""Which preset a run starts from, and how settings from several places combine.

A preset registered under a data set's name (``digits``, ``fashion-mnist``) is that data
set's recipe: the best settings found for it. A run starts from it when no preset is named
and the model chosen (if any) is the recipe's model, so the defaults are the best known
settings for the data chosen. ``preset = "plain"`` starts from FFLib's generic defaults
instead and ``preset = "seed"`` from FFLib 0.3.0's settings. Third-party data set plugins
ship a recipe by registering a preset of the same name.

``ff train`` and Python take the same path: :func:`~ffcore.training.build_run` calls
:func:`resolve_config`, which picks the preset (:func:`choose_preset`) and lays the
settings the user gave over it (:func:`merge_settings`, the one precedence rule), so
``TrainConfig(dataset="digits")`` trains what ``ff train --dataset digits`` trains. The
result says which preset applied, why, and where each setting came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ffcore.config import MODEL_SETTINGS, TrainConfig
from ffcore.errors import ConfigError
from ffcore.plugin_manager import get_plugin_manager
from ffcore.registry import build

#: The preset holding no settings: FFLib's generic defaults, whatever the data set.
PLAIN = "plain"
#: The model-options table, whose keys in :data:`~ffcore.config.MODEL_SETTINGS` are
#: the same settings as the top-level keys of those names.
_MODEL_OPTIONS = "model_options"


def model_settings_first(source: Mapping[str, Any]) -> dict[str, Any]:
    """``source`` with its ``model_options`` entries that are settings of their own
    (``layers``, ``lr``, ``threshold``, ``goodness``, ``loss``) moved to those settings,
    so that they take their source's precedence. One source setting both spellings to
    different values is a :class:`~ffcore.errors.ConfigError`."""
    values = dict(source)
    options = values.get(_MODEL_OPTIONS)
    if not isinstance(options, Mapping):
        return values
    moved = {k: v for k, v in options.items() if k in MODEL_SETTINGS}
    for key, value in moved.items():
        if key in values and values[key] != value:
            raise ConfigError(
                f"{key} is set twice, to {values[key]!r} and as model_options.{key} = "
                f"{value!r}: keep one"
            )
        values[key] = value
    if moved:
        values[_MODEL_OPTIONS] = {k: v for k, v in options.items() if k not in moved}
    return values


def merge_settings(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from ``sources``, lowest precedence first (e.g. preset, file, options).

    The one precedence rule of FFLib's settings:

    - a later source wins over an earlier one, key by key;
    - option tables (``model_options``, ``dataset_options``...) merge key by key;
    - a setting that is also a model option (``layers``, ``lr``, ``threshold``,
      ``goodness``, ``loss``) is one setting under either spelling
      (:func:`model_settings_first`): ``-O model.layers=[64]`` on the command line wins
      over a recipe's ``layers = [500, 500]``, as ``--layers 64`` does.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in model_settings_first(source).items():
            earlier = merged.get(key)
            if key.endswith("_options") and isinstance(value, Mapping):
                merged[key] = {**(earlier if isinstance(earlier, Mapping) else {}), **value}
            else:
                merged[key] = value
    return merged


@dataclass(frozen=True)
class StartingPoint:
    """The preset a run starts from and why.

    ``name`` is ``None`` when no preset applies; ``reason`` says which rule chose it
    (``"named"``, ``"dataset recipe"``, or why the data set's recipe was passed over).
    """

    name: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def _canonical(kind: str, name: str) -> str:
    """A component's registered name (aliases resolved); unknown names as they are."""
    registry = get_plugin_manager().registry(kind)
    return registry.get(name).name if name in registry else name


def _preset(name: str) -> dict[str, Any]:
    return dict(build("preset", name, dict))


def choose_preset(given: Mapping[str, Any]) -> StartingPoint:
    """The preset under the settings a user ``given`` (already merged).

    1. A preset named by ``given["preset"]`` is used as it is.
    2. Otherwise, when a model is chosen, its recipe for the data set: a preset named
       ``<model>-<data set>`` (``ffcnn-fashion-mnist``), if one is registered.
    3. Otherwise the data set's recipe (a preset named like the data set, default
       ``digits``), unless the user chose a different model than the recipe's.
    4. Otherwise none: FFLib's generic defaults.
    """
    registry = get_plugin_manager().registry("preset")
    named = given.get("preset")
    if named is not None:
        return StartingPoint(named, _preset(named), "named")
    dataset = _canonical("dataset", given.get("dataset") or TrainConfig.dataset)
    model = given.get("model")
    specific = None if model is None else f"{_canonical('model', model)}-{dataset}"
    if specific is not None and specific in registry:
        return StartingPoint(specific, {**_preset(specific), "preset": specific}, "model recipe")
    if dataset not in registry:
        return StartingPoint(None, {}, f"no recipe for data set {dataset!r}")
    recipe = _preset(dataset)
    recipe_model = recipe.get("model", TrainConfig.model)
    if model is not None and _canonical("model", model) != _canonical("model", recipe_model):
        return StartingPoint(
            None, {}, f"data set {dataset!r}'s recipe is for model {recipe_model!r}, not {model!r}"
        )
    return StartingPoint(dataset, {**recipe, "preset": dataset}, "dataset recipe")


def starting_preset(
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StartingPoint:
    """The preset under a run's config file and options (options beat the file)."""
    return choose_preset(merge_settings(file or {}, overrides or {}))


#: Where a setting's value came from, in :attr:`ResolvedConfig.sources`.
GIVEN, DEFAULT = "given", "default"


@dataclass(frozen=True)
class ResolvedConfig:
    """A run's settings with its preset applied: what :func:`resolve_config` returns.

    ``config`` is the complete config (its ``preset`` names the preset that applied, or is
    ``None`` when none did); ``preset`` and ``reason`` say which preset applied and why;
    ``sources`` says for each setting whether it was ``"given"``, came from the preset
    (``"preset 'digits'"``) or is the ``"default"``.
    """

    config: TrainConfig
    preset: str | None
    reason: str
    sources: dict[str, str]

    def describe(self) -> str | None:
        """One line for people: which settings the run started from and why (``None``
        when the user named the preset: nothing to explain)."""
        if self.preset is None:
            return f"settings: FFLib's generic defaults ({self.reason})"
        if self.reason in ("dataset recipe", "model recipe"):
            return (
                f"settings: the {self.preset} recipe (preset {self.preset!r}); "
                f"--preset {PLAIN} for FFLib's generic defaults"
            )
        return None


def resolve_config(config: TrainConfig) -> ResolvedConfig:
    """Apply the preset a config starts from under the settings its maker gave.

    The path every run takes (:func:`~ffcore.training.build_run` calls it): the preset is
    the one ``config.preset`` names, else the data set's recipe when the model fits it
    (:func:`choose_preset`); the settings given when the config was made win over it
    (:func:`merge_settings`). Resolving a resolved config changes nothing.
    """
    given = config.given()
    start = choose_preset(given)
    resolved = TrainConfig.from_dict(merge_settings(start.settings, given))
    origin = f"preset {start.name!r}"
    sources: dict[str, str] = {}
    for key in resolved.to_dict():
        if key in given:
            sources[key] = GIVEN
        elif key in start.settings:
            sources[key] = origin
        else:
            sources[key] = DEFAULT
    return ResolvedConfig(resolved, start.name, start.reason, sources)


def recipe_values(setting: str) -> dict[str, Any]:
    """What each data set's recipe sets ``setting`` to, by data set: the effective
    defaults ``ff train --help`` shows."""
    manager = get_plugin_manager()
    datasets = manager.registry("dataset")
    values: dict[str, Any] = {}
    for name in manager.registry("preset").names():
        if name in datasets:
            recipe = _preset(name)
            if setting in recipe:
                values[name] = recipe[setting]
    return values
