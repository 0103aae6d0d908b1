"""Two real processes (gloo on 127.0.0.1) against one: data parallel, the layer pipeline,
their checkpoints and resumes.

One process group runs every job of :mod:`tests.distributed.jobs` once for the module
(starting torch in two processes is what costs); each test compares one job's checkpoint
with a one-process run of the same settings, trained here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ffcore.checkpoint import load_checkpoint, read_checkpoint
from ffcore.config import TrainConfig
from ffcore.runs import save_run
from ffcore.training import build_run, train
from tests.distributed.helpers import run_ranks
from tests.distributed.jobs import BASE, JOBS


def one_process(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    """Train ``settings`` in this process (one thread, as each rank has); the checkpoint."""
    run = build_run(TrainConfig.from_dict({**BASE, **settings}))
    metrics = train(run)
    save_run(run, path, metrics)
    return read_checkpoint(path)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every job, run by two ranks; the folder of their checkpoints."""
    out = tmp_path_factory.mktemp("jobs")
    one_process(JOBS["dp-ffnet"].settings, out / "one-ffnet.pt")  # what dp-resumed resumes
    names = [name for name in JOBS if name != "grid-ffnet"]
    finished = run_ranks(["-m", "tests.distributed.jobs", str(out), *names])
    for rank, result in enumerate(finished):
        assert result.returncode == 0, f"rank {rank}:\n{result.output}"
    return out


def job(out: Path, name: str) -> dict[str, Any]:
    error = out / f"{name}.error"
    assert not error.exists(), error.read_text()
    return read_checkpoint(out / f"{name}.pt")


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


@pytest.mark.parametrize("name", ["dp-ffnet", "dp-ffc", "dp-ffc-ema", "dp-ffrnn", "dp-bp"])
def test_data_parallel_matches_one_process_on_the_global_batch(
    jobs: Path, name: str, tmp_path: Path
) -> None:
    parallel = job(jobs, name)
    alone = one_process(JOBS[name].settings, tmp_path / "one.pt")
    # the same steps up to the order of the sums: weights agree to float32 rounding,
    # through 14 steps whose last batch (7 rows) splits 3 + 4 over the ranks
    assert max_difference(parallel["model"], alone["model"]) < 1e-5
    steps = 14 * parallel["meta"]["epoch"]
    assert parallel["state"]["step"] == alone["state"]["step"] == steps
    metrics, expected = parallel["meta"]["metrics"], alone["meta"]["metrics"]
    assert metrics["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert metrics["val_acc"] == pytest.approx(expected["val_acc"], abs=0.015)


@pytest.mark.parametrize("name", ["dp-ffnet", "dp-ffc-inverse", "dp-ffc-ema"])
def test_overlapped_averaging_gives_the_weights_of_waiting_for_it(jobs: Path, name: str) -> None:
    overlapped, waiting = job(jobs, name), job(jobs, f"{name}-waiting")
    assert overlapped["model"].keys() == waiting["model"].keys()
    for key, value in waiting["model"].items():
        assert torch.equal(overlapped["model"][key], value), key
    assert_same_average(overlapped["state"].get("average"), waiting["state"].get("average"))


def assert_same_average(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> None:
    """Two runs' weight averages (``--ema-decay``) are the same, bit for bit."""
    assert (ours is None) == (theirs is None)
    if ours is None or theirs is None:
        return
    assert (ours["updates"], ours["stepped"]) == (theirs["updates"], theirs["stepped"])
    assert ours["updates"][0] > 0
    for table in ("averages", "training"):
        assert (ours[table] is None) == (theirs[table] is None), table
        for key, value in (theirs[table] or {}).items():
            assert torch.equal(ours[table][key], value), (table, key)


@pytest.mark.parametrize("name", ["pp-ffnet", "pp-ffc", "pp-best", "pp-ffc-ema", "pp-recompute"])
def test_the_pipeline_equals_one_process_bit_for_bit(jobs: Path, name: str, tmp_path: Path) -> None:
    pipelined = job(jobs, name)
    alone = one_process(JOBS[name].settings, tmp_path / "one.pt")
    for key, value in alone["model"].items():
        assert torch.equal(pipelined["model"][key], value), key
    for ours, theirs in zip(pipelined["optimizers"], alone["optimizers"], strict=True):
        for index, state in theirs["state"].items():
            for field, value in state.items():
                assert torch.equal(ours["state"][index][field], value), (index, field)
    assert torch.equal(pipelined["state"]["rng_cpu"], alone["state"]["rng_cpu"])
    assert_same_average(pipelined["state"].get("average"), alone["state"].get("average"))
    # the weights training continues from, when the kept (best) epoch is not the last
    resumed = alone["state"].get("resume_weights")
    assert (resumed is None) == (pipelined["state"].get("resume_weights") is None)
    for key, value in (resumed or {}).items():
        assert torch.equal(pipelined["state"]["resume_weights"][key], value), key
    # the pipelined evaluations (TryAll, or FF+C's classifier) predict what one process does
    history = [(e["epoch"], e["val_acc"]) for e in pipelined["meta"]["history"]]
    assert history == [(e["epoch"], e["val_acc"]) for e in alone["meta"]["history"]]
    assert pipelined["meta"]["metrics"]["test_acc"] == alone["meta"]["metrics"]["test_acc"]
    assert pipelined["meta"]["metrics"]["loss"] == pytest.approx(alone["meta"]["metrics"]["loss"])
    assert pipelined["meta"]["kept_epoch"] == alone["meta"]["kept_epoch"]
    if name == "pp-best":  # the case it is there for: the kept epoch is not the last
        assert pipelined["meta"]["kept_epoch"] == 3 and resumed is not None


def test_a_pipeline_checkpoint_loads_in_one_process(jobs: Path) -> None:
    loaded = load_checkpoint(jobs / "pp-ffc.pt")
    assert loaded.meta["config"]["parallel"] == "layers"
    assert len(loaded.optimizer_states) == 4  # three layers and the classifier, all gathered
    for state in loaded.optimizer_states:
        assert state["state"], "every optimizer's state came from the rank that trained it"


def test_a_resumed_pipeline_continues_the_one_process_run_exactly(
    jobs: Path, tmp_path: Path
) -> None:
    resumed = job(jobs, "pp-ffnet-resumed")
    alone = one_process({**JOBS["pp-ffnet"].settings, "epochs": 3}, tmp_path / "one.pt")
    for key, value in alone["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert resumed["meta"]["epoch"] == 3 and resumed["meta"]["complete"]
    assert resumed["meta"]["kept_epoch"] == alone["meta"]["kept_epoch"]


def test_a_one_process_run_resumes_data_parallel(jobs: Path, tmp_path: Path) -> None:
    resumed = job(jobs, "dp-resumed")
    alone = one_process({**JOBS["dp-ffnet"].settings, "epochs": 2}, tmp_path / "one.pt")
    assert resumed["meta"]["epoch"] == 2
    assert max_difference(resumed["model"], alone["model"]) < 1e-5


def test_the_pipeline_refuses_negatives_that_need_the_whole_network(jobs: Path) -> None:
    message = (jobs / "pp-hard.error").read_text()
    assert "--parallel layers cannot run --negatives 'hard'" in message
    assert "--parallel data" in message


def test_pipeline_stages_each_data_parallel_match_one_process(tmp_path: Path) -> None:
    finished = run_ranks(["-m", "tests.distributed.jobs", str(tmp_path), "grid-ffnet"], nproc=4)
    for rank, result in enumerate(finished):
        assert result.returncode == 0, f"rank {rank}:\n{result.output}"
    grid = job(tmp_path, "grid-ffnet")
    alone = one_process(JOBS["grid-ffnet"].settings, tmp_path / "one.pt")
    assert max_difference(grid["model"], alone["model"]) < 1e-5
    metrics, expected = grid["meta"]["metrics"], alone["meta"]["metrics"]
    assert metrics["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert metrics["val_acc"] == pytest.approx(expected["val_acc"], abs=0.015)
