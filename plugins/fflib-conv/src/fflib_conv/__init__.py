"""fflib-conv: convolutional Forward-Forward layers and networks, an FFLib plugin.

Installing the distribution (``pip install fflib-conv``) adds, through the ``fflib``
entry-point group (plugin ``conv``), the layer ``ffconv2d`` (:class:`FFConv2d`) and the
model ``ffcnn`` (:class:`FFCNN`): ``ff train --model ffcnn --dataset fashion-mnist``.
"""

from importlib import metadata

from fflib_conv.layer import FFConv2d, PositionGoodness, ffconv2d
from fflib_conv.model import FFCNN, ffcnn

try:
    __version__ = metadata.version("fflib-conv")
except metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["FFCNN", "FFConv2d", "PositionGoodness", "__version__", "ffcnn", "ffconv2d"]
