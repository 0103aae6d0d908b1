"""docs/using-models.md stays true: its Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ffcore
from ffcore.export import export_model
from tests.core.usage_helpers import train_tiny

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "using-models.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guide_has_examples() -> None:
    assert len(python_blocks()) >= 3


def test_every_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = train_tiny(tmp_path / "runs" / "ffc-digits.pt", model="ffc")
    export_model(ffcore.load(checkpoint), "onnx", tmp_path / "runs" / "ffc-digits.onnx")
    monkeypatch.chdir(tmp_path)
    for block in python_blocks():
        code = block.replace('"tests/data/', f'"{ROOT}/tests/data/')
        exec(compile(code, str(GUIDE), "exec"), {"__name__": "guide"})
