"""Checkpoints written by FFLib 0.4.0.dev0 (before the layer objective and batch context
were restructured) still load, resume and predict exactly what they predicted then.

``tests/data/legacy`` holds one tiny checkpoint per built-in model (and the conv plugin's
``ffcnn``), trained for one epoch on ``digits``, and ``predictions.json``: each model's
predictions on the ``digits`` test split as that version made them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ffcore.checkpoint import load_checkpoint
from ffcore.registry import create_probe, load_dataset
from ffcore.runs import resume_run
from ffcore.training import train

LEGACY = Path(__file__).resolve().parent.parent / "data" / "legacy"
EXPECTED: dict[str, Any] = json.loads((LEGACY / "predictions.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_legacy_checkpoint_predicts_as_before(name: str) -> None:
    loaded = load_checkpoint(LEGACY / f"{name}-digits.pt")
    probe = create_probe(EXPECTED[name]["probe"])
    data = load_dataset("digits")
    loaded.model.eval()
    with torch.no_grad():
        predicted = probe.predict(loaded.model, data.test.x)
    assert predicted.tolist() == EXPECTED[name]["predictions"]


@pytest.mark.parametrize("name", ["ffnet", "recipe"])
def test_legacy_checkpoint_resumes(name: str, tmp_path: Path) -> None:
    run = resume_run(LEGACY / f"{name}-digits.pt", {"epochs": 3, "out": str(tmp_path / "x.pt")})
    assert run.epoch >= 1
    before = [p.detach().clone() for p in run.model.parameters()]
    metrics = train(run)
    assert run.epoch == 3
    assert 0.0 <= metrics["test_acc"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, run.model.parameters(), strict=True))
