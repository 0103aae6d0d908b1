"""The plugin module (entry point ``conv`` in the ``fflib`` group): registers the components.

They are registered by reference (``"fflib_conv.model:ffcnn"``) with their descriptions, so
loading the plugin imports neither torch nor the layer and model code; those load the
first time a component is built.
"""

from __future__ import annotations

import ffcore
from ffcore.hookspecs import Register


@ffcore.hookimpl
def fflib_register_layers(register: Register) -> None:
    register(
        "ffconv2d",
        "fflib_conv.layer:ffconv2d",
        description=(
            "2-D convolutional FF layer: act(conv(x/‖x‖)), per-position goodness, "
            "optional max-pool."
        ),
        aliases=["ffconv"],
    )


@ffcore.hookimpl
def fflib_register_models(register: Register) -> None:
    register(
        "ffcnn",
        "fflib_conv.model:ffcnn",
        description=(
            "FF conv layers (then FF dense layers), label as one-hot input channels, TryAll."
        ),
        aliases=["ff-cnn"],
    )
