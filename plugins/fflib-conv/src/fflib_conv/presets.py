"""fflib-conv's recipes: presets of ``ff train`` settings for ffcnn on particular data sets.

A preset named ``<model>-<data set>`` is the model's recipe for that data set:
``ff train --model ffcnn --dataset fashion-mnist`` starts from ``ffcnn-fashion-mnist``
(see :func:`ffcore.recipes.choose_preset`).
"""

from __future__ import annotations

from typing import Any


def ffcnn_fashion_mnist() -> dict[str, Any]:
    """ffcnn on Fashion-MNIST: channel-competitive FF, 4 conv layers, 30 epochs (92.9%).

    BatchNorm, shifts and mirror images of the training batches, AdamW with weight decay,
    the last two layers' goodness of each image and its mirror image predicting: the
    settings of ``examples/configs/ffcnn_fashion_mnist.toml``.
    """
    return {
        "model": "ffcnn",
        "dataset": "fashion-mnist",
        "layers": [60, 120, 240, 240],
        "epochs": 30,
        "batch_size": 128,
        "lr": 0.03,
        "lr_schedule": "cosine",
        "precision": "bf16",
        "probe": "class-goodness-mirrored",
        "model_options": {
            "objective": "channel-competitive",
            "kernel_size": 3,
            "pool": [2, 2, 1, 1],
            "bias": False,
            "optimizer": "adamw",
            "weight_decay": 5e-4,
            "augment": "crop2,flip",
            "layer_range": "2:",
        },
    }
