"""A damaged or crafted checkpoint gives one clear error, never a crash or a side effect.

Every tensor is checked against the rebuilt model before use (a mismatched Adam moment
made the fused kernel write out of bounds: a segmentation fault), the description is
checked against one schema, sizes read from the file are bounded before anything is
allocated, and paths or download flags stored in the file decide nothing.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from ffcore.checkpoint import load_checkpoint
from ffcore.errors import CheckpointError
from ffcore.limits import MAX_CLASSES
from tests.core.checkpoint_surgery import (
    assert_one_clean_error,
    invoke,
    raw_payload,
    rewrite,
    trained_checkpoint,
)
from tests.core.test_cli import ff_executable


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run's checkpoint (ffnet, one 32-unit layer on digits), shared read-only."""
    return trained_checkpoint(tmp_path_factory.mktemp("saved") / "run.pt")


def adam_state(payload: dict[str, Any]) -> dict[str, Any]:
    """The first layer's weight's Adam state (its weight is 32 x 74)."""
    state: dict[str, Any] = payload["optimizers"][0]["state"][0]
    return state


# --- 1. optimizer and other tensors, checked before use --------------------------------


def test_mismatched_adam_moments_are_refused_not_a_segfault(saved: Path, tmp_path: Path) -> None:
    """The tester's reproduction, in a real process: the fused Adam step used to write out of
    bounds (rc 139). A larger state, which trained on garbage, is among the tensors below
    and in the fuzz test's child process."""
    rows = 30
    assert tuple(adam_state(raw_payload(saved))["exp_avg"].shape) == (32, 74)

    def smaller(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        adam_state(payload)["exp_avg"] = torch.zeros(rows, 74)
        adam_state(payload)["exp_avg_sq"] = torch.zeros(rows, 74)

    bad = rewrite(saved, tmp_path / "bad.pt", smaller)
    out = tmp_path / "resumed.pt"
    command = [ff_executable(), "train", "--resume", str(bad), "--epochs", "2", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr.strip() == (
        f"Error: {bad}: field optimizers[0].state[0].exp_avg: expected a tensor of shape "
        f"(32, 74) (got a torch.float32 tensor of shape ({rows}, 74))"
    )
    assert not out.exists()


def _set(where: str, value: Any) -> Any:
    """An edit that sets ``payload[...]`` along ``where`` (``/``-separated; digits index)."""

    def edit(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        node: Any = payload
        keys = [int(k) if k.isdigit() else k for k in where.split("/")]
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value() if callable(value) else value

    return edit


_DELETE = object()

TENSOR_DAMAGE = [
    ("optimizers/0/state/0/exp_avg", lambda: torch.zeros(40, 74), "a tensor of shape (32, 74)"),
    (
        "optimizers/0/state/0/exp_avg",
        lambda: torch.zeros(32, 74, dtype=torch.float64),
        "a torch.float32 tensor",
    ),
    (
        "optimizers/0/state/0/exp_avg",
        lambda: torch.zeros(32, 74, dtype=torch.int64),
        "a torch.float32 tensor",
    ),
    ("optimizers/0/state/0/exp_avg", lambda: torch.zeros(74).expand(32, 74), "a contiguous tensor"),
    ("optimizers/0/state/0/exp_avg", 0.0, "expected a tensor"),
    ("optimizers/0/state/0/exp_avg_sq", _DELETE, "expected the keys exp_avg, exp_avg_sq, step"),
    ("optimizers/0/state/0/max_exp_avg_sq", lambda: torch.zeros(32, 74), "expected the keys"),
    ("optimizers/0/state/0/step", lambda: torch.tensor(-3.0), "a whole step count"),
    ("optimizers/0/state/0/step", lambda: torch.ones(2), "a tensor of shape ()"),
    ("optimizers/0/state/0/step", "seven", "a step count"),
    ("optimizers/0/state/7", lambda: {}, "the state of a parameter the groups list"),
    ("optimizers/0/param_groups/0/lr", "fast", "a finite number"),
    ("optimizers/0/param_groups/0/lr", math.nan, "a finite number"),
    ("optimizers/0/param_groups/0/betas", (0.9, 0.99, 0.1), "2 values"),
    ("optimizers/0/param_groups/0/fused", False, "True, as this model's optimizer has"),
    ("optimizers/0/param_groups/0/amsgrad", True, "False, as this model's optimizer has"),
    ("optimizers/0/param_groups/0/params", [0, 0], "each parameter index once"),
    ("optimizers/0/param_groups/0/params", [0], "2 parameter indices"),
    ("optimizers/0/param_groups/0/surprise", 1, "only the hyperparameters of Adam"),
    ("optimizers/0/param_groups", lambda: [], "1 parameter groups"),
    ("optimizers", lambda: [], "1 optimizer states"),
    ("model/layers.0.linear.weight", lambda: torch.zeros(30, 74), "a tensor of shape (32, 74)"),
    (
        "model/layers.0.linear.weight",
        lambda: torch.zeros(32, 74, dtype=torch.float16),
        "a torch.float32 tensor",
    ),
    ("model/layers.0.linear.bias", _DELETE, "weights for 'layers.0.linear.bias'"),
    ("model/extra", lambda: torch.zeros(1), "only this model's weights, not 'extra'"),
    ("state/rng_cpu", lambda: torch.zeros(10, dtype=torch.uint8), "a tensor of shape (5056,)"),
    ("state/rng_cpu", lambda: torch.zeros(5056), "a torch.uint8 tensor"),
    ("state/rng_cuda", lambda: [torch.zeros(3)], "a torch.uint8 tensor"),
    ("state/base_lrs", lambda: [[math.nan]], "finite learning rates"),
    ("state/base_lrs", lambda: [[0.1], [0.1]], "finite learning rates for [1] parameter"),
    ("state/epoch", -1, "an integer from 0"),
    ("state/epoch", "1", "an integer from 0"),
    ("state/batch", 10**6, "an integer from 0 to 6"),
    ("state/loss_sum", "lots", "a number"),
    ("state/loss_reference", math.inf, "a finite number or null"),
]


@pytest.mark.parametrize(("where", "value", "expected"), TENSOR_DAMAGE)
def test_every_tensor_and_counter_is_checked_before_resuming(
    saved: Path, tmp_path: Path, where: str, value: Any, expected: str
) -> None:
    bad = rewrite(saved, tmp_path / "bad.pt", _set(where, value))
    out = tmp_path / "out.pt"
    result = invoke("train", "--resume", str(bad), "--epochs", "2", "--out", str(out))
    line = assert_one_clean_error(result, f"Error: {bad}: field ", expected)
    assert where.split("/")[0] in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_weights_of_another_shape_are_one_line_for_eval_too(saved: Path, tmp_path: Path) -> None:
    """The shape mismatch used to print torch's multi-line ``load_state_dict`` report."""
    bad = rewrite(
        saved, tmp_path / "bad.pt", _set("model/layers.0.linear.weight", lambda: torch.zeros(32, 3))
    )
    assert_one_clean_error(
        invoke("eval", str(bad)),
        "field model.layers.0.linear.weight: expected a tensor of shape (32, 74)",
    )


def test_a_good_checkpoint_still_loads_and_resumes(saved: Path, tmp_path: Path) -> None:
    assert load_checkpoint(saved).meta["epoch"] == 1
    out = tmp_path / "longer.pt"
    result = invoke("train", "--resume", str(saved), "--epochs", "2", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["epochs"][-1]["epoch"] == 2.0


# --- 4. one schema for the description -------------------------------------------------


def _meta(text: str) -> Any:
    def edit(payload: dict[str, Any], meta: dict[str, Any]) -> str:
        return text

    return edit


def _meta_field(key: str, value: Any) -> Any:
    def edit(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        node = meta
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return edit


DESCRIPTIONS = [
    ("a list", _meta("[1, 2]"), "field meta: expected a table (a JSON object) (got [1, 2])"),
    ("a number", _meta("3"), "field meta: expected a table"),
    ("not JSON", _meta("{'model': }"), "field meta: expected valid JSON"),
    ("200,000 deep", _meta("[" * 200_000 + "]" * 200_000), "expected JSON nested at most 32"),
    ("model a string", _meta_field("model", "ffnet"), "field model: expected a table"),
    ("model nameless", _meta_field("model.name", _DELETE), "field model.name: expected"),
    ("model options a list", _meta_field("model.options", [1]), "field model.options"),
    ("dataset a string", _meta_field("dataset", "digits"), "field dataset: expected a table"),
    ("no input_shape", _meta_field("input_shape", _DELETE), "field input_shape: expected"),
    ("input_shape text", _meta_field("input_shape", "1x8x8"), "field input_shape: expected"),
    ("NaN num_classes", _meta_field("num_classes", math.nan), "field num_classes: expected an"),
    ("1e12 num_classes", _meta_field("num_classes", 10**12), f"from 2 to {MAX_CLASSES:,}"),
    ("config not a table", _meta_field("config", [1, 2]), "field config: expected a table"),
    (
        "options not a table",
        _meta_field("config.negatives_options", "x"),
        "config.negatives_options",
    ),
    ("epoch negative", _meta_field("epoch", -4), "field epoch: expected an integer from 0"),
    ("metrics a list", _meta_field("metrics", [0.5]), "field metrics: expected a table"),
    ("history of text", _meta_field("history", ["x"]), "field history[0]: expected a table"),
    ("class names short", _meta_field("class_names", ["a"]), "field class_names"),
    ("sources damaged", _meta_field("component_sources.model", 3), "component_sources.model"),
    ("negative version", _meta_field("format_version", -1), "field format_version: expected an"),
]


@pytest.mark.parametrize(
    ("case", "edit", "expected"), DESCRIPTIONS, ids=[d[0] for d in DESCRIPTIONS]
)
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_damaged_description_names_the_field(
    saved: Path, tmp_path: Path, case: str, edit: Any, expected: str, command: str
) -> None:
    bad = rewrite(saved, tmp_path / "bad.pt", edit)
    args = ["eval", str(bad)] if command == "eval" else ["train", "--resume", str(bad)]
    assert_one_clean_error(invoke(*args), f"Error: {bad}: ", expected)


@pytest.mark.parametrize("version", [-1, 0, "1", 1.0, None])
def test_only_known_format_versions_are_read(saved: Path, tmp_path: Path, version: Any) -> None:
    bad = rewrite(saved, tmp_path / "bad.pt", _set("format_version", version))
    with pytest.raises(CheckpointError, match="field format_version: expected an integer from 1"):
        load_checkpoint(bad)


def test_a_damaged_training_state_is_named_when_resuming(saved: Path, tmp_path: Path) -> None:
    bad = rewrite(saved, tmp_path / "bad.pt", _set("state", [1, 2]))
    assert_one_clean_error(
        invoke("train", "--resume", str(bad)), "field state: expected the training state"
    )
    config = rewrite(saved, tmp_path / "config.pt", _meta_field("config.lr", "fast"))
    assert_one_clean_error(
        invoke("train", "--resume", str(config)),
        f"{config}: field config: expected a valid training config (invalid lr: 'fast'",
    )


# --- 5. no side effect from what a file says; sizes bounded ----------------------------


class DownloadSpy:
    """Stands in for torchvision's downloader and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path]] = []

    def __call__(self, folder: str, root: Path) -> None:
        self.calls.append((folder, root))


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> DownloadSpy:
    spy = DownloadSpy()
    monkeypatch.setattr("ffplugins.datasets.vision._torchvision_download", spy)
    return spy


@pytest.mark.parametrize("command", ["eval", "debug"])
def test_stored_data_paths_and_download_flags_decide_nothing(
    saved: Path, tmp_path: Path, downloads: DownloadSpy, command: str
) -> None:
    evil = tmp_path / "made" / "by" / "the" / "file"

    def point_elsewhere(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        meta["dataset"] = {"name": "mnist", "options": {"root": str(evil), "download": True}}

    bad = rewrite(saved, tmp_path / "bad.pt", point_elsewhere)
    extra = ["--logdir", str(tmp_path / "tb")] if command == "debug" else []
    result = invoke(command, str(bad), "--no-download", *extra)
    line = assert_one_clean_error(result, "dataset 'mnist': no data in")
    assert str(evil) not in line
    assert not (tmp_path / "made").exists() and not (tmp_path / "tb").exists()
    assert downloads.calls == []
    # the command line decides: a download the user allows goes to their data directory
    invoke(command, str(bad), "--download", *extra)
    assert [folder for folder, _ in downloads.calls] == ["MNIST"]
    assert evil not in [root for _, root in downloads.calls]
    assert not (tmp_path / "made").exists()


def test_stored_data_location_is_ignored_when_resuming(saved: Path, tmp_path: Path) -> None:
    def stored_root(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        meta["config"].update(data_root=str(tmp_path / "made"), download=False)
        meta["config"]["dataset_options"] = {"root": str(tmp_path / "made2")}

    bad = rewrite(saved, tmp_path / "bad.pt", stored_root)
    out = tmp_path / "out.pt"
    result = invoke("train", "--resume", str(bad), "--epochs", "1", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)["config"]
    assert config["data_root"] is None and config["download"] is True
    assert config["dataset_options"] == {}
    assert not (tmp_path / "made").exists() and not (tmp_path / "made2").exists()


def test_sizes_in_a_file_are_bounded_before_allocating(saved: Path, tmp_path: Path) -> None:
    huge_layers = rewrite(
        saved, tmp_path / "layers.pt", _meta_field("model.options.layers", [10**9])
    )
    assert_one_clean_error(
        invoke("eval", str(huge_layers)),
        "field model.layers.0.linear.weight: expected a tensor of shape (1000000000, 74)",
    )
    wide = rewrite(saved, tmp_path / "wide.pt", _meta_field("input_shape", [1, 10**6, 10**6]))
    assert_one_clean_error(
        invoke("eval", str(wide)), "field input_shape: expected a list of 1 to 8"
    )

    def many_samples(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        meta["dataset"] = {"name": "xor", "options": {"samples": 3 * 10**9}}

    samples = rewrite(saved, tmp_path / "samples.pt", many_samples)
    assert_one_clean_error(
        invoke("eval", str(samples)),
        "field dataset.options.samples: expected at most 10,000,000 (got 3000000000)",
    )


def test_stored_dataset_options_are_type_checked_naming_the_file(
    saved: Path, tmp_path: Path
) -> None:
    def noisy(payload: dict[str, Any], meta: dict[str, Any]) -> None:
        meta["dataset"] = {"name": "xor", "options": {"noise": "big"}}

    bad = rewrite(saved, tmp_path / "bad.pt", noisy)
    assert_one_clean_error(
        invoke("eval", str(bad)),
        f"Error: {bad}: field dataset.options.noise: expected a finite number (got 'big')",
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda meta: [1, 2], "field meta: expected a table"),
        (lambda meta: {**meta, "num_classes": 10**12}, "field num_classes: expected an integer"),
        (
            lambda meta: {**meta, "model": {**meta["model"], "options": {"layers": [10**9]}}},
            "expected a tensor of shape (1000000000, 74)",
        ),
    ],
)
def test_an_exported_safetensors_file_is_checked_the_same_way(
    saved: Path, tmp_path: Path, edit: Any, expected: str
) -> None:
    """``ff export --format safetensors`` files are read with the checkpoint's checks."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    exported = tmp_path / "model.safetensors"
    result = invoke("export", str(saved), "--format", "safetensors", "-o", str(exported))
    assert result.exit_code == 0, result.output
    with safe_open(str(exported), framework="pt") as file:
        metadata = dict(file.metadata())
        weights = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    metadata["fflib"] = json.dumps(edit(json.loads(metadata["fflib"])))
    damaged = tmp_path / "damaged.safetensors"
    save_file(weights, str(damaged), metadata=metadata)
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        import ffcore

        ffcore.load(damaged)


# --- the weight average (--ema-decay) a run resumes with --------------------------------


@pytest.fixture(scope="module")
def averaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's checkpoint that averages its weights (the same run as ``saved``)."""
    return trained_checkpoint(tmp_path_factory.mktemp("averaged") / "run.pt", ema_decay=0.9)


AVERAGE_DAMAGE = [
    ("averages/layers.0.linear.weight", lambda: torch.zeros(30, 74), "a tensor of shape (32, 74)"),
    ("averages/layers.0.linear.bias", _DELETE, "a tensor for 'layers.0.linear.bias'"),
    ("averages/extra", lambda: torch.zeros(1), "only the averaged weights, not 'extra'"),
    ("averages", lambda: [1], "a table of tensors"),
    (
        "training/layers.0.linear.weight",
        lambda: torch.zeros(32, 74, dtype=torch.float64),
        "a torch.float32 tensor",
    ),
    ("updates", lambda: [1, 2], "a list of 1 counters"),
    ("updates/0", -1, "an integer from 0"),
    ("stepped", lambda: ["yes"], "a list of 1 booleans"),
]


@pytest.mark.parametrize(("where", "value", "expected"), AVERAGE_DAMAGE)
def test_a_damaged_weight_average_is_named_before_resuming(
    averaged: Path, tmp_path: Path, where: str, value: Any, expected: str
) -> None:
    bad = rewrite(averaged, tmp_path / "bad.pt", _set(f"state/average/{where}", value))
    result = invoke("train", "--resume", str(bad), "--epochs", "2")
    assert_one_clean_error(result, f"Error: {bad}: field state.average", expected)


def test_a_weight_average_must_match_the_run_averaging_or_not(
    saved: Path, averaged: Path, tmp_path: Path
) -> None:
    extra = raw_payload(averaged)["state"]["average"]
    stray = rewrite(saved, tmp_path / "stray.pt", _set("state/average", lambda: extra))
    assert_one_clean_error(
        invoke("train", "--resume", str(stray)), "state.average: expected null (the run averages"
    )
    missing = rewrite(averaged, tmp_path / "missing.pt", _set("state/average", None))
    assert_one_clean_error(
        invoke("train", "--resume", str(missing)), "state.average: expected the weight average's"
    )


def test_an_averaged_checkpoint_resumes_and_evaluates(averaged: Path, tmp_path: Path) -> None:
    out = tmp_path / "two.pt"
    assert (
        invoke("train", "--resume", str(averaged), "--epochs", "2", "--out", str(out)).exit_code
        == 0
    )
    payload = raw_payload(out)
    average = payload["state"]["average"]
    assert average["updates"][0] > 0
    for name, tensor in average["averages"].items():
        assert torch.equal(payload["model"][name], tensor)  # the model is the averages
    assert invoke("eval", str(out)).exit_code == 0
