"""fflib-conv: convolutional Forward-Forward layers and networks, an FFLib plugin.

Installing the distribution (``pip install fflib-conv``) adds, through the ``fflib``
entry-point group (plugin ``conv``), the layer ``ffconv2d`` (:class:`FFConv2d`) and the
model ``ffcnn`` (:class:`FFCNN`): ``ff train --model ffcnn --dataset fashion-mnist``.

The classes are imported on first use (module ``__getattr__``), so that loading the
plugin, which imports this package, does not import torch: ``ff --help`` and shell
completion stay fast.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fflib_conv.augment import Augmentation
    from fflib_conv.competitive import ChannelCompetitiveCNN, ClassGoodness
    from fflib_conv.layer import FFConv2d, PositionGoodness, ffconv2d
    from fflib_conv.model import FFCNN, ffcnn

#: Where each public name lives; its module is imported the first time it is used.
_HOMES = {
    "Augmentation": "fflib_conv.augment",
    "ChannelCompetitiveCNN": "fflib_conv.competitive",
    "ClassGoodness": "fflib_conv.competitive",
    "FFConv2d": "fflib_conv.layer",
    "PositionGoodness": "fflib_conv.layer",
    "ffconv2d": "fflib_conv.layer",
    "FFCNN": "fflib_conv.model",
    "ffcnn": "fflib_conv.model",
}

try:
    __version__ = metadata.version("fflib-conv")
except metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "FFCNN",
    "Augmentation",
    "ChannelCompetitiveCNN",
    "ClassGoodness",
    "FFConv2d",
    "PositionGoodness",
    "__version__",
    "ffcnn",
    "ffconv2d",
]


def __getattr__(name: str) -> Any:
    """Import a public class or factory (and with it torch) on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
