"""Fixtures for fflib-conv's tests: a fresh plugin manager per test, one thread, no network.

The tests use the *installed* plugin (``pip install ./plugins/fflib-conv``): FFLib finds it
through its ``fflib`` entry point, exactly as it finds any third-party plugin.
"""

from __future__ import annotations

import torch
from ffcore.testing import isolated_plugins  # noqa: F401  (autouse: a fresh manager per test)

torch.set_num_threads(1)  # predictable on a shared machine
