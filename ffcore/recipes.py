"""Which preset a run starts from: the one named, else the data set's recipe.

A preset registered under a data set's name (``digits``, ``fashion-mnist``) is that data
set's recipe: the best settings found for it. ``ff train --dataset NAME`` starts from it
when no preset is named and the model chosen (if any) is the recipe's model, so the
defaults are the best known settings for the data chosen. ``--preset plain`` starts from
FFLib's generic defaults instead and ``--preset seed`` from FFLib 0.3.0's settings.
Third-party data set plugins ship a recipe by registering a preset of the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ffcore.config import TrainConfig
from ffcore.plugin_manager import get_plugin_manager
from ffcore.registry import build

#: The preset holding no settings: FFLib's generic defaults, whatever the data set.
PLAIN = "plain"


@dataclass(frozen=True)
class StartingPoint:
    """The preset a run starts from and why.

    ``name`` is ``None`` when no preset applies; ``reason`` says which rule chose it
    (``"named"``, ``"dataset recipe"``, or why the data set's recipe was passed over).
    """

    name: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def _chosen(key: str, file: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
    """The value the user chose for ``key`` (overrides beat the file), or ``None``."""
    return overrides.get(key, file.get(key))


def _canonical(kind: str, name: str) -> str:
    """A component's registered name (aliases resolved); unknown names as they are."""
    registry = get_plugin_manager().registry(kind)
    return registry.get(name).name if name in registry else name


def starting_preset(
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StartingPoint:
    """The preset under a run's config file and options.

    1. A preset named by ``overrides`` or ``file`` (key ``preset``) is used as it is.
    2. Otherwise the data set's recipe (a preset named like the data set, default
       ``digits``), unless the user chose a different model than the recipe's.
    3. Otherwise none: FFLib's generic defaults.
    """
    file = file or {}
    overrides = overrides or {}
    registry = get_plugin_manager().registry("preset")
    named = _chosen("preset", file, overrides)
    if named is not None:
        return StartingPoint(named, dict(build("preset", named, dict)), "named")
    dataset = _canonical("dataset", _chosen("dataset", file, overrides) or TrainConfig.dataset)
    if dataset not in registry:
        return StartingPoint(None, {}, f"no recipe for data set {dataset!r}")
    recipe = dict(build("preset", dataset, dict))
    model = _chosen("model", file, overrides)
    recipe_model = recipe.get("model", TrainConfig.model)
    if model is not None and _canonical("model", model) != _canonical("model", recipe_model):
        return StartingPoint(
            None, {}, f"data set {dataset!r}'s recipe is for model {recipe_model!r}, not {model!r}"
        )
    return StartingPoint(dataset, {**recipe, "preset": dataset}, "dataset recipe")
