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
            "FF conv layers: label channels and TryAll, or channel-competitive with class-goodness."
        ),
        aliases=["ff-cnn"],
    )


@ffcore.hookimpl
def fflib_register_probes(register: Register) -> None:
    register(
        "class-goodness",
        "fflib_conv.competitive:class_goodness_probe",
        description="Predict the class whose channel group has the most goodness, in one pass.",
        aliases=["goodness-argmax"],
    )
    register(
        "class-goodness-mirrored",
        "fflib_conv.competitive:mirrored_class_goodness_probe",
        description="class-goodness of each image and its mirror image, added (two passes).",
    )


@ffcore.hookimpl
def fflib_register_presets(register: Register) -> None:
    register(
        "ffcnn-fashion-mnist",
        "fflib_conv.presets:ffcnn_fashion_mnist",
        description=(
            "ffcnn on Fashion-MNIST: channel-competitive FF, 4 conv layers, 30 epochs (92.9%)."
        ),
    )
