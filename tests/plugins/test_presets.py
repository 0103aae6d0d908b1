"""Presets: settings that name components which really are registered."""

from __future__ import annotations

import ffcore


def test_seed_preset_names_registered_components() -> None:
    assert "seed" in ffcore.list_presets()
    settings = ffcore.get_preset("seed")
    assert settings["model"] in ffcore.list_models()
    assert settings["goodness"] in ffcore.list_goodness()
    assert settings["loss"] in ffcore.list_losses()
    assert settings["negatives"] in ffcore.list_negatives()
    assert settings["lr"] > 0 and settings["batch_size"] > 0
    assert all(isinstance(width, int) and width > 0 for width in settings["layers"])


def test_seed_preset_builds_a_model() -> None:
    settings = ffcore.get_preset("seed")
    model = ffcore.create_model(
        settings["model"],
        input_shape=(1, 8, 8),
        num_classes=10,
        layers=[16, 16],
        goodness=settings["goodness"],
        loss=settings["loss"],
        threshold=settings["threshold"],
        lr=settings["lr"],
        **settings["model_options"],
    )
    for layer in model.modules():
        if isinstance(layer, ffcore.interfaces.FFLayer):
            assert layer.threshold == settings["threshold"]
            assert layer.lr == settings["lr"]


def test_get_preset_returns_a_copy() -> None:
    first = ffcore.get_preset("seed")
    first["lr"] = -1
    assert ffcore.get_preset("seed")["lr"] != -1
