"""Built-in data sets: mnist, fashion-mnist, cifar10 (torchvision), digits, xor.

They are registered by reference in :mod:`ffplugins.catalog` (plugin ``datasets``).
"""
