"""Fuzzing a real checkpoint: whatever is changed in it, ``ff`` fails cleanly or works.

Hypothesis takes one real run's checkpoint and changes one thing in it: a field of the
description (deleted, retyped, nested, a huge or non-finite number, a path), a tensor
(its shape, dtype, layout, values, or a non-tensor in its place), or the payload's
structure (format version, optimizer lists, parameter groups, training state). Then
``ff eval``, ``ff train --resume`` and ``ff debug`` each run on it and must

- exit 0, or exit 2 with exactly one ``Error:`` line and no traceback (never 1, never a
  crash); a change that breaks what a command reads must give 2;
- leave no trace: no file or directory appears anywhere the test watches (the working
  directory, HOME, the data directory, the system temporary directory, every path the
  mutations name) except the command's own output after a success, and no download or
  network connection is attempted.

A segmentation fault would end the test process; the dangerous tensor changes are
therefore also run in a child process (:func:`test_dangerous_tensors_in_a_real_process`).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ffcore.components import normalize_name
from tests.core.checkpoint_surgery import error_lines, invoke, raw_payload, trained_checkpoint

COMMANDS = ("eval", "resume", "debug")
#: Data sets that read files: a description naming one would legitimately download it.
FILE_DATASETS = {"mnist", "fashion-mnist", "cifar10", "cifar-10"}
EVIL = "evil-place"  # a directory name the mutations point stored paths at


@dataclass(frozen=True)
class Mutation:
    """One change to a checkpoint, and the commands it must make fail."""

    name: str
    apply: Callable[[dict[str, Any], dict[str, Any]], str | None]
    fails: frozenset[str] = field(default_factory=frozenset)


def walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON document (keys and list indices), the root excepted."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in items:
        yield (*path, key)
        yield from walk(child, (*path, key))


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


SAFE_TEXT = st.text(max_size=12).filter(lambda t: normalize_name(t) not in FILE_DATASETS)
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 10**12, 3 * 10**9, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    SAFE_TEXT,
    st.sampled_from([EVIL, f"/tmp/{EVIL}", "../..", "", "ffnet", "digits", "xor", "cuda", "bf16"]),
    st.lists(st.integers(min_value=-3, max_value=10**7), max_size=4),
    st.dictionaries(SAFE_TEXT, st.integers(), max_size=3),
    st.integers(min_value=30, max_value=400).map(nested),
)

#: Description fields a command cannot do without: changing their type must fail.
REQUIRED = {("model",), ("model", "name"), ("input_shape",), ("num_classes",)}


def _json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


@st.composite
def description_mutations(draw: st.DrawFn, meta: dict[str, Any]) -> Mutation:
    whole = draw(st.sampled_from(["field", "field", "field", "whole"]))
    if whole == "whole":
        text = draw(
            st.sampled_from(["[]", "3", "null", '"x"', "{", "[" * 200_000 + "]" * 200_000, "{}"])
        )
        return Mutation(f"meta = {text[:12]}", lambda p, m: text, frozenset(COMMANDS))
    path = draw(st.sampled_from(sorted(walk(meta), key=str)))
    operation = draw(st.sampled_from(["delete", "replace", "wrap"]))
    value = draw(JSON_VALUES) if operation == "replace" else None

    def apply(payload: dict[str, Any], parsed: dict[str, Any]) -> None:
        parent = parsed
        for key in path[:-1]:
            parent = parent[key]
        if operation == "delete":
            del parent[path[-1]]
        elif operation == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = value

    original: Any = meta
    for key in path:
        original = original[key]
    breaks = path in REQUIRED and (
        operation != "replace" or _json_type(value) != _json_type(original)
    )
    fails = frozenset(COMMANDS) if breaks else frozenset()
    return Mutation(f"{operation} {'.'.join(map(str, path))} {value!r:.40}", apply, fails)


def tensor_paths(payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [("model", k) for k in payload["model"]]
    for index, optimizer in enumerate(payload["optimizers"]):
        for number, state in optimizer["state"].items():
            found += [("optimizers", index, "state", number, key) for key in state]
    found.append(("state", "rng_cpu"))
    found += [("state", "resume_weights", k) for k in payload["state"].get("resume_weights", {})]
    return found


def _reshaped(t: torch.Tensor, how: str) -> torch.Tensor:
    if how == "row less" and t.dim() and t.shape[0] > 1:
        return t[1:].clone()
    if how == "row more" and t.dim():
        return torch.cat([t, t[:1]])
    if how == "flat":
        return t.reshape(-1)[:-1].clone() if t.numel() > 1 else torch.zeros(2, dtype=t.dtype)
    if how == "scalar":
        return torch.zeros((), dtype=t.dtype) if t.dim() else torch.zeros(1, dtype=t.dtype)
    return torch.zeros((0, *t.shape), dtype=t.dtype)  # "empty": one dimension more


@st.composite
def tensor_mutations(draw: st.DrawFn, payload: dict[str, Any]) -> Mutation:
    path = draw(st.sampled_from(tensor_paths(payload)))
    original: Any = payload
    for key in path:
        original = original[key]
    is_step = path[-1] == "step"
    kind = draw(st.sampled_from(["shape", "dtype", "non-tensor", "layout", "values", "delete"]))
    strict = frozenset({"resume"}) if path[0] == "state" else frozenset(COMMANDS)
    if kind == "shape":
        how = draw(st.sampled_from(["row less", "row more", "flat", "scalar", "empty"]))
        new: Any = _reshaped(original, how)
        fails = strict if tuple(new.shape) != tuple(original.shape) else frozenset()
    elif kind == "dtype":
        dtype = draw(
            st.sampled_from(
                [torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8,
                 torch.bool, torch.complex64, torch.float32]
            )
        )  # fmt: skip
        new = original.to(dtype)
        fails = strict if dtype != original.dtype and not is_step else frozenset()
    elif kind == "non-tensor":
        new = draw(st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none(),
                             st.lists(st.floats(), max_size=3)))  # fmt: skip
        fails = frozenset() if is_step and isinstance(new, int | float) else strict
    elif kind == "layout":
        new = (
            torch.zeros(original.shape[::-1], dtype=original.dtype).mT
            if original.dim() == 2
            else original.clone()
        )
        contiguous_needed = path[0] != "model" and new.dim() == 2 and 1 not in new.shape
        fails = strict if contiguous_needed else frozenset()
    elif kind == "values":
        fill = draw(st.sampled_from([math.nan, math.inf, 1e30, -1.0, 0.0]))
        new = torch.full_like(original, fill) if original.is_floating_point() else original.clone()
        fails = frozenset()
    else:
        new = None
        fails = strict

    def apply(p: dict[str, Any], meta: dict[str, Any]) -> None:
        parent: Any = p
        for key in path[:-1]:
            parent = parent[key]
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = new

    return Mutation(f"{kind} of {'/'.join(map(str, path))}", apply, fails)


def _setting(where: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any], Any], None]:
    """An edit setting ``payload[where...]`` to ``value`` (``_GONE``: deleting it)."""

    def apply(payload: dict[str, Any], meta: Any) -> None:
        parent: Any = payload
        for key in where[:-1]:
            parent = parent[key]
        if value is _GONE:
            del parent[where[-1]]
        else:
            parent[where[-1]] = value(parent[where[-1]]) if callable(value) else value

    return apply


_GONE = object()
GROUP_KEYS = ["lr", "betas", "eps", "fused", "amsgrad", "params", "weight_decay", "maximize", "x"]
STATE_KEYS = [
    "epoch", "batch", "step", "loss_sum", "skipped", "base_lrs", "rng_cuda", "selection",
    "resume_weights", "loss_reference",
]  # fmt: skip
OPTIMIZER_LISTS: dict[str, Callable[[list[Any]], Any]] = {
    "none": lambda o: [],
    "twice": lambda o: o + o,
    "not a list": lambda o: {"0": o},
    "junk entry": lambda o: [*o[:-1], 7],
}


@st.composite
def structure_mutations(draw: st.DrawFn, payload: dict[str, Any]) -> Mutation:
    every = frozenset(COMMANDS)
    choice = draw(st.sampled_from(["version", "drop", "optimizers", "group", "state", "counter"]))
    if choice == "version":
        version = draw(st.sampled_from([-1, 0, 2, "1", 1.0, None, True, 10**30]))
        return Mutation(
            f"format_version {version!r}", _setting(("format_version",), version), every
        )
    if choice == "drop":
        key = draw(st.sampled_from(["meta", "model", "format", "optimizers", "state"]))
        fails = frozenset({"resume"}) if key == "state" else every
        return Mutation(f"no {key}", _setting((key,), _GONE), fails)
    if choice == "optimizers":
        how = draw(st.sampled_from(sorted(OPTIMIZER_LISTS)))
        return Mutation(f"optimizers {how}", _setting(("optimizers",), OPTIMIZER_LISTS[how]), every)
    value = draw(JSON_VALUES)
    if choice == "group":
        key = draw(st.sampled_from(GROUP_KEYS))
        where: tuple[Any, ...] = ("optimizers", 0, "param_groups", 0, key)
        return Mutation(f"param group {key} = {value!r:.30}", _setting(where, value))
    if choice == "state":
        return Mutation(
            f"state = {value!r:.30}", _setting(("state",), value), frozenset({"resume"})
        )
    key = draw(st.sampled_from(STATE_KEYS))
    return Mutation(f"state.{key} = {value!r:.30}", _setting(("state", key), value))


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_checkpoint(tmp_path_factory.mktemp("fuzz") / "run.pt")


class NoNetwork:
    """Records (and refuses) every download and connection attempt."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            self.attempts.append(f"{what} {args[:2]!r}")
            raise OSError(f"test: no {what}")

        return refused


@pytest.fixture
def watched(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, NoNetwork]:
    """A sandbox: working directory, HOME and system temp inside ``tmp_path``, no network.

    matplotlib (``ff debug``'s charts, when installed) keeps its font cache in a folder of
    its own, outside the sandbox: a library's cache, whatever the checkpoint holds.
    """
    for name in ("cwd", "home", "systmp"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("matplotlib")))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    network = NoNetwork()
    monkeypatch.setattr(socket.socket, "connect", network.refuse("connect"))
    monkeypatch.setattr(
        "ffplugins.datasets.vision._torchvision_download", network.refuse("download")
    )
    return tmp_path, network


def snapshot(*roots: Path) -> set[str]:
    return {str(p) for root in roots if root.exists() for p in root.rglob("*")}


def run_command(command: str, bad: Path, out: Path) -> Any:
    if command == "eval":
        return invoke("eval", str(bad), "--device", "cpu")
    if command == "resume":
        return invoke("train", "--resume", str(bad), "--epochs", "1", "--device", "cpu",
                      "--out", str(out / "resumed.pt"))  # fmt: skip
    return invoke(
        "debug", str(bad), "--logdir", str(out / "tb"), "--samples", "16", "--device", "cpu"
    )


#: Examples per run; set FFLIB_FUZZ_EXAMPLES=2000 for a long search.
EXAMPLES = int(os.environ.get("FFLIB_FUZZ_EXAMPLES", "60"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_mutated_checkpoint_fails_cleanly_with_no_side_effect(
    original: Path, watched: tuple[Path, NoNetwork], data: st.DataObject
) -> None:
    sandbox, network = watched
    payload = raw_payload(original)
    meta = json.loads(payload["meta"])
    mutation = data.draw(
        st.one_of(
            description_mutations(meta), tensor_mutations(payload), structure_mutations(payload)
        ),
        label="mutation",
    )
    bad, out = sandbox / "bad.pt", sandbox / "out"
    text = mutation.apply(payload, meta)
    if "meta" in payload:
        payload["meta"] = text if isinstance(text, str) else json.dumps(meta)
    torch.save(payload, bad)
    out.mkdir(exist_ok=True)
    before = snapshot(sandbox)
    for command in COMMANDS:
        result = run_command(command, bad, out)
        where = (mutation.name, command, result.output[-600:], result.exception)
        event(f"{command}: exit {result.exit_code}")
        assert result.exit_code in (0, 2), where
        assert "Traceback" not in result.output, where
        if result.exit_code == 2:
            assert len(error_lines(result)) == 1, where
        if command in mutation.fails:
            assert result.exit_code == 2, where
        produced = snapshot(sandbox) - before
        allowed = (
            {p for p in produced if p.startswith(str(out) + "/")}
            if result.exit_code == 0
            else set()
        )
        assert produced == allowed, (where, sorted(produced - allowed))
        for path in sorted(produced, reverse=True):  # clear the output for the next command
            (Path(path).rmdir if Path(path).is_dir() else Path(path).unlink)()
    assert network.attempts == [], mutation.name
    assert not any(EVIL in p for p in snapshot(sandbox, Path("/tmp") / EVIL))


DANGEROUS: dict[str, Callable[[dict[str, Any]], None]] = {
    "moment rows fewer": lambda p: p["optimizers"][0]["state"][0].update(
        exp_avg=torch.zeros(30, 74)
    ),
    "moment rows more": lambda p: p["optimizers"][0]["state"][0].update(
        exp_avg_sq=torch.zeros(40, 74)
    ),
    "moment transposed view": lambda p: p["optimizers"][0]["state"][0].update(
        exp_avg=torch.zeros(74, 32).mT
    ),
    "moment expanded": lambda p: p["optimizers"][0]["state"][1].update(
        exp_avg=torch.zeros(1).expand(32)
    ),
    "moment of ints": lambda p: p["optimizers"][0]["state"][0].update(
        exp_avg=torch.zeros(32, 74, dtype=torch.int8)
    ),
    "step a vector": lambda p: p["optimizers"][0]["state"][0].update(step=torch.zeros(3)),
    "state rng too short": lambda p: p["state"].update(rng_cpu=torch.zeros(16, dtype=torch.uint8)),
    "weight narrower": lambda p: p["model"].update({"layers.0.linear.weight": torch.zeros(32, 10)}),
}

DRIVER = """
import sys
from click.testing import CliRunner
from ffcore.cli.main import cli
for bad in sys.argv[1:]:
    for args in (["eval", bad], ["train", "--resume", bad, "--epochs", "2"]):
        result = CliRunner().invoke(cli, args)
        errors = [l for l in result.output.splitlines() if l.startswith("Error:")]
        print(result.exit_code, len(errors), "Traceback" in result.output, args[0], bad, flush=True)
"""


def test_dangerous_tensors_in_a_real_process(original: Path, tmp_path: Path) -> None:
    """The changes that could make a kernel read or write out of bounds, in a child
    process, so that a crash shows as a crash, not as a lost test run."""
    files = []
    for name, change in DANGEROUS.items():
        payload = raw_payload(original)
        change(payload)
        files.append(tmp_path / f"{name.replace(' ', '-')}.pt")
        torch.save(payload, files[-1])
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2 * len(files)
    for line in lines:  # the training state is read by --resume only
        status = "0 0 False" if "/state-" in line and " eval " in line else "2 1 False"
        assert line.startswith(status), line
