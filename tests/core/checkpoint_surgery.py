"""Helpers for tests that damage checkpoints: a real run's checkpoint, edited in place."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner, Result

from ffcore.cli.main import cli
from ffcore.config import TrainConfig
from ffcore.runs import save_run
from ffcore.training import build_run, train

#: A tiny real run: ffnet with one 32-unit layer on digits (inputs 64 + 10 label units).
RUN = {
    "preset": "plain",  # ffnet, not the digits recipe
    "layers": [32],
    "epochs": 1,
    "device": "cpu",
    "batch_size": 256,
    "seed": 1,
}


def trained_checkpoint(path: Path, **settings: Any) -> Path:
    """Train :data:`RUN` (with ``settings``) and save it to ``path``."""
    run = build_run(TrainConfig(**{**RUN, **settings}))
    return save_run(run, path, train(run))


def raw_payload(path: Path) -> dict[str, Any]:
    """A checkpoint's payload as ``torch.load`` gives it (the description still a string)."""
    payload: dict[str, Any] = torch.load(path, weights_only=True)
    return payload


def rewrite(
    source: Path, target: Path, edit: Callable[[dict[str, Any], dict[str, Any]], Any]
) -> Path:
    """Copy ``source`` to ``target`` through ``edit(payload, meta)``.

    ``edit`` changes the payload and the parsed description in place; if it returns a
    string, that string becomes the description as it is (for invalid JSON).
    """
    payload = raw_payload(source)
    meta = json.loads(payload["meta"])
    text = edit(payload, meta)
    payload["meta"] = text if isinstance(text, str) else json.dumps(meta)
    torch.save(payload, target)
    return target


def invoke(*args: str) -> Result:
    """``ff ARGS`` in this process."""
    return CliRunner().invoke(cli, list(args))


def error_lines(result: Result) -> list[str]:
    """The lines of the output that report an error."""
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def assert_one_clean_error(result: Result, *fragments: str) -> str:
    """Exit status 2, one ``Error:`` line holding ``fragments``, no traceback; the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
