"""The docs stay true: every hookspec is documented, CI runs the README's test command."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ffcore import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_GUIDE = ROOT / "docs" / "writing-plugins.md"


def hookspec_functions() -> list[tuple[str, list[str]]]:
    specs = []
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("fflib_"):
            specs.append((name, list(inspect.signature(function).parameters)))
    return specs


def test_there_are_hookspecs() -> None:
    names = [name for name, _ in hookspec_functions()]
    assert "fflib_register_layers" in names and "fflib_layer_goodness" in names
    assert len(names) == len(hookspecs.REGISTRATION_HOOKS) + 8


@pytest.mark.parametrize(("name", "arguments"), hookspec_functions())
def test_every_hookspec_is_documented_with_its_arguments(name: str, arguments: list[str]) -> None:
    guide = PLUGIN_GUIDE.read_text(encoding="utf-8")
    headings = [line for line in guide.splitlines() if line.startswith("#") and f"`{name}(" in line]
    assert headings, f"{name} has no heading in {PLUGIN_GUIDE.name}"
    documented = re.search(rf"`{name}\(([^)]*)\)`", headings[0])
    assert documented is not None
    listed = [part.strip() for part in documented.group(1).split(",") if part.strip()]
    assert listed == arguments, f"{name}: documented {listed}, actual {arguments}"


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in readme.splitlines()
        if "pytest" in line and "pip install" in line and not line.lstrip().startswith("#")
    ]
    assert len(commands) == 1, f"expected one test command line in README.md, got {commands}"
    return commands[0]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme_test_command() in ci_lines
