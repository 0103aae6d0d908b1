"""Installs a tiny plugin distribution for real: a ``.dist-info`` folder on ``sys.path``.

``importlib.metadata`` (and so FFLib's loader) finds it exactly as it finds a pip-installed
distribution: no mock of FFLib's own code is involved.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

#: A plugin module adding the ``abs-sum`` goodness (the guide's example plugin).
ABS_GOODNESS = """
from torch import Tensor
import ffcore
from ffcore.interfaces import GoodnessFunction

class AbsSum(GoodnessFunction):
    def __call__(self, h: Tensor) -> Tensor:
        return h.abs().flatten(1).sum(1)
    def default_threshold(self, num_features: int) -> float:
        return float(num_features)

def abs_sum() -> GoodnessFunction:
    '''Sum of absolute activity.'''
    return AbsSum()

@ffcore.hookimpl
def fflib_register_goodness(register):
    register("abs-sum", abs_sum)
"""


def install_fake_distribution(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    name: str,
    version: str,
    modules: dict[str, str],
    entry_points: dict[str, str],
) -> None:
    """Write ``modules`` and a dist-info declaring ``entry_points`` in group ``fflib``."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, module, raising=False)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[fflib]\n{lines}", encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
