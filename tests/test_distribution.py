"""Distribution hygiene: licence, Python version, the plugin's pin on FFLib, changelog."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONV = ROOT / "plugins" / "fflib-conv"


def project(folder: Path) -> dict[str, object]:
    data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    found: dict[str, object] = data["project"]
    return found


def test_each_distribution_ships_the_licence_its_metadata_names() -> None:
    for folder in (ROOT, CONV):
        assert project(folder)["license"] == {"text": "MIT"}
        text = (folder / "LICENSE").read_text(encoding="utf-8")
        assert text.startswith("MIT License") and "FFLib developers" in text


def test_the_readme_states_the_python_version_pyproject_requires() -> None:
    required = project(ROOT)["requires-python"]
    assert isinstance(required, str)
    minimum = re.fullmatch(r">=(3\.\d+)", required)
    assert minimum is not None, required
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.findall(r"Python (3\.\d+) or newer", readme)
    assert stated == [minimum.group(1)]
    assert project(CONV)["requires-python"] == required


def test_fflib_conv_needs_this_fflib_not_pypis_older_one() -> None:
    dependencies = project(CONV)["dependencies"]
    assert isinstance(dependencies, list)
    (fflib,) = [Requirement(d) for d in dependencies if Requirement(d).name == "fflib"]
    this_version = project(ROOT)["version"]
    assert fflib.specifier.contains(str(this_version), prereleases=True)
    for older in ("0.3.0", "0.2.0", "0.1.1"):  # PyPI's unrelated fflib releases
        assert not fflib.specifier.contains(older, prereleases=True)


def test_the_changelog_has_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and "## [0.3.0]" in changelog
