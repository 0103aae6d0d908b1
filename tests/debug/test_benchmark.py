"""The tracing-overhead benchmark runs and prints its JSON lines (a tiny, quick setting)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tracing_overhead.py"


def test_benchmark_prints_one_json_line_per_measurement(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = runpy.run_path(str(SCRIPT), run_name="tracing_overhead")
    args = ["--layers", "8", "--epochs", "1", "--repeats", "2", "--threads", "1"]
    assert namespace["main"](args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["name"] for line in lines] == [
        "tracing_overhead/off",
        "tracing_overhead/on",
        "tracing_overhead/tracer_hooks",
        "tracing_overhead/summary",
    ]
    for line in lines:
        assert line["config"]["layers"] == [8] and line["median_seconds"] is not None
    assert lines[0]["samples_per_second"] > 0 and lines[1]["samples_per_second"] > 0
    assert len(lines[0]["runs_seconds"]) == len(lines[1]["runs_seconds"]) == 2
    assert lines[2]["median_seconds"] > 0  # the tracer did run
    assert isinstance(lines[3]["overhead_percent"], float)
    assert lines[3]["hook_overhead_percent"] > 0
