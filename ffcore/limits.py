"""Bounds on every size FFLib reads from a file or an option before it allocates.

A checkpoint, a config file or a command line can name any number; these limits turn an
absurd one (``num_classes`` 1e12, a 20-digit layer width, JSON nested 200,000 deep) into a
clear error before memory is touched, instead of an allocator traceback or a killed
process. They are far above anything a Forward-Forward network trains on today, so they
never get in the way of a real run; whether a run that passes them fits the machine is
checked separately (:mod:`ffcore.sizing`).
"""

from __future__ import annotations

#: Classes a data set or checkpoint may declare (ImageNet-21k has about 21,000).
MAX_CLASSES = 100_000
#: Dimensions of one input sample (``(C, H, W)`` is 3).
MAX_INPUT_DIMS = 8
#: Features of one input sample: a 4096 x 4096 image of 4 channels.
MAX_INPUT_FEATURES = 1 << 26
#: Units in one layer (a single 16M-unit layer is already gigabytes of weights).
MAX_LAYER_WIDTH = 1 << 24
#: Layers in one model.
MAX_LAYERS = 10_000
#: Samples a synthetic data set may generate.
MAX_SYNTHETIC_SAMPLES = 10_000_000
#: Largest seed: torch generators take 64-bit seeds; FFLib keeps them non-negative.
MAX_SEED = (1 << 63) - 1
#: Bytes of a checkpoint's JSON description (a real one is a few kilobytes).
MAX_DESCRIPTION_BYTES = 16 << 20
#: Nesting of lists and tables in a checkpoint description or a config file.
MAX_NESTING = 32
#: Bytes of a TOML config file.
MAX_CONFIG_BYTES = 1 << 20
#: Epochs, batches and steps a checkpoint may say it has trained.
MAX_COUNTER = 1 << 53


def nesting_depth(value: object, limit: int = MAX_NESTING) -> int:
    """How deeply lists, tuples and mappings nest in ``value`` (a scalar is 0).

    Iterative, so that a hostile document cannot exhaust the interpreter's stack; it stops
    counting at ``limit + 1``.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest
