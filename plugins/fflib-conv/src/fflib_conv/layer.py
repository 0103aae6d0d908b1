"""FFConv2d: a 2-D convolutional Forward-Forward layer.

The layer sees a detached input normalised at every spatial position over its channels
(or over the whole sample), convolves it, applies an activation and an optional max-pool.
Its goodness is the goodness function of the channel vector at each output position,
summed or averaged over the positions. Everything else (the loss, the optimizer step, the
divergence checks) is :class:`ffcore.interfaces.FFLayer`'s shared ``train_step``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from ffcore.errors import InvalidValueError
from ffcore.interfaces import FFLayer, GoodnessFunction, Objective, ObjectiveOptions
from ffcore.layers import ACTIVATIONS, NORMS, choice, layer_factory, positive_int
from torch import Tensor, nn

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Activations that commute with max-pooling (monotonic), so the layer pools first and
#: activates the 4x smaller result; the others (``gelu``) are pooled after activating.
MONOTONIC = frozenset({"relu", "leaky-relu", "tanh", "sigmoid", "identity"})

#: What one normalisation (:data:`ffcore.layers.NORMS`) covers: ``channels`` (each
#: spatial position's channel vector, the FF rule for convolutions) or ``sample`` (all
#: channels and positions of a sample).
NORM_OVER = ("channels", "sample")
#: How per-position goodness becomes one number per sample.
REDUCTIONS = ("mean", "sum")
PADDINGS = ("same", "valid")
#: Normalisations of the layer's output: ``batch`` (BatchNorm over the batch and positions
#: of each channel, what channel-competitive FF trains on) or ``none``.
OUTPUT_NORMS = ("none", "batch")
#: Initialisations of the convolution's weights: PyTorch's ``default``, or ``kaiming``
#: (normal, fan-out, for ReLU), which keeps a stack of BatchNorm'd ReLU blocks in scale.
WEIGHT_INITS = ("default", "kaiming")


def conv_output_size(
    size: Sequence[int], kernel_size: int, padding: str, pool: int, input_pool: int = 1
) -> tuple[int, int] | None:
    """``(H, W)`` after an ``input_pool`` max-pool, a stride-1 convolution and a ``pool``
    max-pool; ``None`` if empty."""
    shrink = 0 if padding == "same" else kernel_size - 1
    height = (size[0] // input_pool - shrink) // pool
    width = (size[1] // input_pool - shrink) // pool
    return (height, width) if height >= 1 and width >= 1 else None


class PositionGoodness(GoodnessFunction):
    """A goodness function applied to each position's channel vector, then reduced.

    ``h`` has shape ``(B, C, H, W)``; the inner function sees ``(B·H·W, C)`` rows and the
    result is their sum or mean per sample, shape ``(B,)``.
    """

    def __init__(self, inner: GoodnessFunction, reduce: str = "mean") -> None:
        self.inner = inner
        self.reduce = choice("goodness_reduce", reduce, REDUCTIONS)

    def __call__(self, h: Tensor) -> Tensor:
        batch, channels = h.shape[0], h.shape[1]
        rows = h.movedim(1, -1).reshape(-1, channels)
        per_position = self.inner(rows).view(batch, -1)
        return per_position.sum(dim=1) if self.reduce == "sum" else per_position.mean(dim=1)

    def default_threshold(self, num_features: int) -> float:
        """The inner goodness' threshold for ``num_features`` channels at one position."""
        return self.inner.default_threshold(num_features)


class FFConv2d(FFLayer):
    """``h = pool(act(conv(x / ‖x‖)))`` on a detached input, trained locally.

    The norm is taken at each spatial position over the channels (``norm_over="channels"``)
    or over the whole sample (``"sample"``). Goodness: the goodness function of each output
    position's channel vector, averaged (``goodness_reduce="mean"``) or summed (``"sum"``)
    over the output positions.

    Args:
        in_channels: channels of the input.
        out_channels: number of filters.
        kernel_size: side of the square kernel.
        padding: ``same`` (default; output as large as the input) or ``valid``.
        pool: side of the max-pool window (and its stride) after the activation; 1: none.
        input_pool: side of a max-pool of the detached input before the convolution; 1:
            none. Pooling there instead of after the activation lets the goodness see the
            full-resolution output (as channel-competitive FF does).
        activation: ``relu`` (default), ``gelu``, ``leaky-relu``, ``tanh``, ``sigmoid``,
            ``identity``.
        norm: ``rms`` (default), ``l2`` or ``none``.
        norm_over: ``channels`` (default) or ``sample``.
        goodness_reduce: ``mean`` (default) or ``sum`` of the goodness over the output
            positions.
        output_norm: ``none`` (default) or ``batch``: BatchNorm of the output (after the
            activation and pool), whose result is both the goodness' input and what the
            next layer reads; its running statistics serve in ``eval()`` mode.
        weight_init: ``default`` (PyTorch's) or ``kaiming`` (normal, fan-out, ReLU gain).
        input_size: ``(H, W)`` of the input; needed for the default threshold of summed
            goodness, and checked on every input when given.
        objective: :class:`~ffcore.interfaces.Objective` (or its fields one by one); its
            goodness applies per position, and its default threshold (the goodness' own
            for ``out_channels`` units) is multiplied by the output positions when summed.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        padding: str = "same",
        pool: int = 1,
        input_pool: int = 1,
        bias: bool = True,
        activation: str = "relu",
        norm: str = "rms",
        norm_over: str = "channels",
        goodness_reduce: str = "mean",
        output_norm: str = "none",
        weight_init: str = "default",
        input_size: Sequence[int] | None = None,
        eps: float = 1e-8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        objective: Objective | None = None,
        **options: Unpack[ObjectiveOptions],
    ) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = positive_int("kernel_size", kernel_size)
        self.padding = choice("padding", padding, PADDINGS)
        self.pool_size = positive_int("pool", pool)
        self.input_pool_size = positive_int("input_pool", input_pool)
        self.output_norm = choice("output_norm", output_norm, OUTPUT_NORMS)
        self.weight_init = choice("weight_init", weight_init, WEIGHT_INITS)
        self.activation_name = choice("activation", activation, ACTIVATIONS)
        self.norm = choice("norm", norm, NORMS)
        self.norm_over = choice("norm_over", norm_over, NORM_OVER)
        self.goodness_reduce = choice("goodness_reduce", goodness_reduce, REDUCTIONS)
        self.input_size = None if input_size is None else self._check_size(input_size)
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            self.kernel_size,
            padding=self.padding,
            bias=bias,
            device=device,
            dtype=dtype,
        )
        if self.weight_init == "kaiming":
            nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        self.act = ACTIVATIONS[activation]()
        self.pool: nn.Module = nn.MaxPool2d(pool) if pool > 1 else nn.Identity()
        self.input_pool: nn.Module = nn.MaxPool2d(input_pool) if input_pool > 1 else nn.Identity()
        # BatchNorm's eps is 1e-4, as in CwComp's setup, not PyTorch's 1e-5: it bounds the
        # gain a channel of the ReLU output that is nearly silent over a batch receives.
        self.bn: nn.Module = (
            nn.BatchNorm2d(out_channels, eps=1e-4, device=device, dtype=dtype)
            if self.output_norm == "batch"
            else nn.Identity()
        )
        self.eps = eps
        objective = Objective.of(objective, **options)
        positions = 1  # the default threshold covers each summed position's goodness
        if goodness_reduce == "sum" and self.input_size is not None:
            out_size = self.output_size(self.input_size)
            assert out_size is not None
            positions = out_size[0] * out_size[1]
        elif goodness_reduce == "sum" and objective.threshold is None:
            raise InvalidValueError(
                "input_size",
                None,
                "(height, width) when goodness_reduce is 'sum' and no threshold is given",
            )
        inner = objective.goodness_function()
        self.set_objective(
            objective,
            out_channels,
            goodness=PositionGoodness(inner, goodness_reduce),
            threshold_scale=positions,
        )

    def _check_size(self, input_size: Sequence[int]) -> tuple[int, int]:
        """``input_size`` as ``(H, W)`` if the layer's output is not empty at that size."""
        if not isinstance(input_size, Sequence) or len(input_size) != 2:
            raise InvalidValueError("input_size", input_size, "(height, width)")
        size = (
            positive_int("input_size", input_size[0]),
            positive_int("input_size", input_size[1]),
        )
        if self.output_size(size) is None:
            raise InvalidValueError(
                "input_size",
                list(input_size),
                f"at least {self.kernel_size} pixels a side for kernel {self.kernel_size}, "
                f"padding {self.padding}, pool {self.pool_size}",
            )
        return size

    # --- shapes -----------------------------------------------------------------------

    def output_size(self, size: Sequence[int]) -> tuple[int, int] | None:
        """``(H, W)`` of the output for an input of ``size``, or ``None`` if it vanishes."""
        return conv_output_size(
            size, self.kernel_size, self.padding, self.pool_size, self.input_pool_size
        )

    def check_input(self, x: Tensor, channels: int | None = None) -> None:
        """Fail clearly on an input that is not ``(B, in_channels, H, W)``."""
        channels = self.in_channels if channels is None else channels
        size = self.input_size
        if (
            x.dim() != 4
            or x.shape[1] != channels
            or (size is not None and tuple(x.shape[2:]) != size)
            or (size is None and self.output_size(tuple(x.shape[2:])) is None)
        ):
            where = f"{size[0]}, {size[1]}" if size is not None else "H, W"
            raise InvalidValueError(
                "input shape", tuple(x.shape), f"(batch, {channels}, {where}) for this FFConv2d"
            )

    # --- forward ----------------------------------------------------------------------

    def _inverse_norm(self, sum_squares: Tensor, count: int) -> Tensor:
        """``1 / (norm + eps)`` from a sum of squares over ``count`` entries."""
        length = sum_squares.sqrt()
        if self.norm == "rms":
            length = length / math.sqrt(count)
        scale: Tensor = (length + self.eps).reciprocal()
        return scale

    def input_scale(self, x: Tensor) -> Tensor:
        """The factor that normalises ``x``: ``(B, 1, H, W)`` (per position) or ``(B, 1, 1, 1)``."""
        if self.norm == "none":
            return x.new_ones(x.shape[0], 1, 1, 1)
        squares = x.square()
        if self.norm_over == "channels":
            return self._inverse_norm(squares.sum(dim=1, keepdim=True), x.shape[1])
        return self._inverse_norm(squares.sum(dim=(1, 2, 3), keepdim=True), x[0].numel())

    def normalize(self, x: Tensor) -> Tensor:
        """The detached, normalised input the layer actually convolves.

        It is laid out channels-last, which the CPU convolution kernels run about twice as
        fast as the default layout; activations keep that layout (their values and shape
        are the usual ``(B, C, H, W)`` ones).
        """
        x = x.detach()
        self.check_input(x)
        x = self.input_pool(x.contiguous(memory_format=torch.channels_last))
        return x if self.norm == "none" else x * self.input_scale(x)

    def activate(self, pre: Tensor) -> Tensor:
        """Activation and max-pooling of the convolution's output.

        A monotonic activation commutes with the max, so it is applied after pooling,
        to a tensor ``pool²`` times smaller; the result is the same.
        """
        h: Tensor
        if self.activation_name in MONOTONIC:
            h = self.act(self.pool(pre))
        else:
            h = self.pool(self.act(pre))
        normed: Tensor = self.bn(h)
        return normed

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.conv(self.normalize(x)))

    def forward_codes(
        self, x: Tensor, codes: Tensor, *, equal_lengths: bool | None = None
    ) -> Tensor:
        """Every input paired with every code, as if the code filled constant channels.

        ``x`` has shape ``(B, in_channels - K, H, W)`` and ``codes`` ``(L, K)``; the result,
        shape ``(B·L, out_channels, H', W')`` sample-major, equals
        ``self(cat(x[b], code[l] as K constant planes))`` for every pair. When every code
        has the same length (one-hot labels do), the normalisation does not depend on the
        code and the convolution splits: one convolution over ``x`` and one over the
        normalisation map with the code's filters, instead of ``B·L`` full ones.
        ``equal_lengths=True`` says so for codes known to be (one-hot codes times one
        scale), sparing the check on the codes' values, which a traced graph cannot make.
        """
        x = x.detach()
        codes = codes.detach().to(x.dtype)
        num_codes, code_channels = codes.shape
        self.check_input(x, self.in_channels - code_channels)
        batch, _, height, width = x.shape
        code_squares = codes.square().sum(dim=1)
        if equal_lengths is None:
            equal_lengths = bool((code_squares == code_squares[0]).all())
        if self.norm != "none" and not equal_lengths:
            planes = codes[:, :, None, None].expand(num_codes, code_channels, height, width)
            full = torch.cat(
                (
                    x.repeat_interleave(num_codes, dim=0),
                    planes.repeat(batch, 1, 1, 1),
                ),
                dim=1,
            )
            h: Tensor = self(full)
            return h
        # Constant code planes are unchanged by the input's max-pool: pool the image alone.
        x = self.input_pool(x)
        height, width = x.shape[2], x.shape[3]
        # The normalisation map with the code's squares added: the same for every code.
        if self.norm == "none":
            scale = x.new_ones(batch, 1, height, width)
        elif self.norm_over == "channels":
            sum_squares = x.square().sum(dim=1, keepdim=True) + code_squares[0]
            scale = self._inverse_norm(sum_squares, self.in_channels)
        else:
            sum_squares = x.square().sum(dim=(1, 2, 3), keepdim=True)
            sum_squares = sum_squares + code_squares[0] * height * width
            scale = self._inverse_norm(sum_squares, self.in_channels * height * width)
            scale = scale.expand(batch, 1, height, width)
        weight = self.conv.weight
        image_weight = weight[:, : self.in_channels - code_channels]
        code_weight = weight[:, self.in_channels - code_channels :]
        x = x.contiguous(memory_format=torch.channels_last)
        scale = scale.contiguous(memory_format=torch.channels_last)
        image_part = F.conv2d(x * scale, image_weight, self.conv.bias, padding=self.padding)
        # Each code's filter: its constant channels folded into one kernel per output channel.
        folded = torch.einsum("lk,okij->loij", codes, code_weight)
        folded = folded.reshape(num_codes * self.out_channels, 1, *folded.shape[2:])
        code_part = F.conv2d(scale, folded, padding=self.padding)
        out_h, out_w = image_part.shape[2:]
        pre = image_part.unsqueeze(1) + code_part.view(
            batch, num_codes, self.out_channels, out_h, out_w
        )
        return self.activate(pre.reshape(batch * num_codes, self.out_channels, out_h, out_w))

    def extra_repr(self) -> str:
        direction = "maximise" if self.maximise else "minimise"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"padding={self.padding}, input_pool={self.input_pool_size}, pool={self.pool_size}, "
            f"output_norm={self.output_norm}, activation={self.activation_name}, "
            f"norm={self.norm} over {self.norm_over}, goodness {self.goodness_reduce} over "
            f"positions, threshold={self.threshold:g}, {direction}"
        )


ffconv2d = layer_factory(
    FFConv2d,
    "2-D convolutional FF layer: act(conv(x/‖x‖)), per-position goodness, optional max-pool.",
)
