"""The plugin module (entry point ``conv`` in the ``fflib`` group): registers the components."""

from __future__ import annotations

import ffcore
from ffcore.hookspecs import Register

from fflib_conv.layer import ffconv2d
from fflib_conv.model import ffcnn


@ffcore.hookimpl
def fflib_register_layers(register: Register) -> None:
    register("ffconv2d", ffconv2d, aliases=["ffconv"])


@ffcore.hookimpl
def fflib_register_models(register: Register) -> None:
    register("ffcnn", ffcnn, aliases=["ff-cnn"])
