"""Built-in data sets: mnist, fashion-mnist, cifar10 (torchvision), digits, xor."""

from __future__ import annotations

from ffcore import hookimpl
from ffcore.hookspecs import Register
from ffplugins.datasets.embedded import digits, xor
from ffplugins.datasets.vision import cifar10, fashion_mnist, mnist


@hookimpl
def fflib_register_datasets(register: Register) -> None:
    register("digits", digits)
    register("xor", xor)
    register("mnist", mnist)
    register("fashion-mnist", fashion_mnist)
    register("cifar10", cifar10, aliases=["cifar-10"])
