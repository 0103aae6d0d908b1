"""The distributed package's parts, in this process: launcher variables, the stage split,
shares of a batch, pipeline messages, refusals, stage steps that add up to one step."""

from __future__ import annotations

import copy
import itertools
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import Tensor

from ffcore.config import TrainConfig
from ffcore.distributed import launch
from ffcore.distributed.control import StopVote
from ffcore.distributed.data_parallel import (
    GradientAveraging,
    layer_stages,
    rank_seed,
    shard_bounds,
)
from ffcore.distributed.environment import (
    DistEnvironment,
    threads_per_process,
    timeout_seconds,
)
from ffcore.distributed.faults import agree_on_failure
from ffcore.distributed.pipeline import batch_shape, check_pipeline
from ffcore.distributed.split import balanced_split
from ffcore.distributed.transport import END, SKIPPED, control_header, decode_header, encode_header
from ffcore.errors import ConfigError, DivergenceError, FFLibError, InvalidValueError
from ffcore.interfaces import Batch, FFModel, PipelineModel, StageCost
from ffcore.registry import build
from ffcore.runs import save_run
from ffcore.training import build_run
from tests.distributed.helpers import free_port

LAUNCHED = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}


def test_the_launchers_variables_say_which_process_this_is() -> None:
    assert DistEnvironment.detect({}) is None
    assert DistEnvironment.detect({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = DistEnvironment.detect(LAUNCHED)
    assert env == DistEnvironment(rank=1, world_size=4, local_rank=1, local_world_size=2)
    assert env is not None and not env.is_main


@pytest.mark.parametrize(
    ("changed", "field"),
    [({"RANK": None}, "RANK"), ({"RANK": "4"}, "RANK"), ({"LOCAL_RANK": "x"}, "LOCAL_RANK")],
)
def test_bad_launcher_variables_are_named(changed: dict[str, str | None], field: str) -> None:
    environ = {k: v for k, v in {**LAUNCHED, **changed}.items() if v is not None}
    with pytest.raises(InvalidValueError, match=f"invalid {field}"):
        DistEnvironment.detect(environ)


def test_timeout_and_threads() -> None:
    assert timeout_seconds({}) == 300 and timeout_seconds({"FFLIB_DIST_TIMEOUT": "12.5"}) == 12.5
    with pytest.raises(InvalidValueError, match="FFLIB_DIST_TIMEOUT"):
        timeout_seconds({"FFLIB_DIST_TIMEOUT": "soon"})
    assert threads_per_process(1) >= 1 and threads_per_process(10_000) == 1


def brute_force_largest(costs: list[float], stages: int) -> float:
    best = float("inf")
    for cuts in itertools.combinations(range(1, len(costs)), stages - 1):
        bounds = [0, *cuts, len(costs)]
        parts = [sum(costs[bounds[i] : bounds[i + 1]]) for i in range(stages)]
        best = min(best, max(parts))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_the_split_minimises_the_slowest_stage(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    costs = (torch.rand(7, generator=generator) * 10).tolist()
    for stages in range(1, 8):
        split = balanced_split(costs, stages)
        assert [i for stage in split for i in stage] == list(range(7))
        assert all(len(stage) >= 1 for stage in split)
        largest = max(sum(costs[i] for i in stage) for stage in split)
        assert largest == pytest.approx(brute_force_largest(costs, stages))


def test_the_split_needs_a_layer_per_stage() -> None:
    assert balanced_split([1, 5, 1, 1], 2) == [range(0, 2), range(2, 4)]
    with pytest.raises(InvalidValueError, match="each stage needs a layer"):
        balanced_split([1.0, 2.0], 3)


def test_shares_of_a_batch_cover_it_and_seeds_differ_by_rank_and_batch() -> None:
    for total, ranks in [(7, 2), (1, 2), (128, 3)]:
        bounds = [shard_bounds(total, rank, ranks) for rank in range(ranks)]
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        sizes = [stop - start for start, stop in bounds]
        assert max(sizes) - min(sizes) <= 1
    seeds = {rank_seed(0, rank, step) for rank in range(4) for step in range(50)}
    assert len(seeds) == 200 and rank_seed(3, 1, 7) == rank_seed(3, 1, 7)


def test_a_message_header_describes_its_tensors() -> None:
    tensors = [torch.zeros(5, 3), torch.zeros(4, dtype=torch.int64), torch.zeros(2, 2, 2)]
    header = encode_header(tensors, torch.device("cpu"))
    assert decode_header(header) == [(t.dtype, tuple(t.shape)) for t in tensors]
    assert decode_header(control_header(END, torch.device("cpu"))) == END
    assert decode_header(control_header(SKIPPED, torch.device("cpu"))) == SKIPPED


def run_of(**settings: Any) -> Any:
    base = {"dataset": "digits", "device": "cpu", "layers": [16, 8], "preset": "plain"}
    return build_run(TrainConfig.from_dict({**base, **settings}))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"model": "ffrnn"}, "cannot split model 'ffrnn'"),
        ({"model": "bp"}, "cannot split model 'bp'"),
        ({"negatives": "hard"}, "cannot run --negatives 'hard'"),
        ({"model": "ffc", "negatives": "neutral"}, "cannot run --negatives 'neutral'"),
        ({"layers": [16]}, "needs at least 2 layers"),
    ],
)
def test_what_cannot_be_pipelined_is_refused_naming_the_option(
    settings: dict[str, Any], expected: str
) -> None:
    with pytest.raises(FFLibError, match=expected) as refused:
        check_pipeline(run_of(**settings), 2)
    assert "--parallel" in str(refused.value) or "processes" in str(refused.value)


def test_the_cost_estimate_sees_the_shared_first_layer() -> None:
    shape = batch_shape(run_of(batch_size=128))
    assert shape == StageCost(positives=128, negatives_per_positive=1, same_inputs=True)
    model = build("model", "ffnet", FFModel, input_shape=(784,), num_classes=10)
    assert isinstance(model, PipelineModel)
    first, second = model.pipeline_costs(shape)
    # MNIST's 2x2000: the first layer multiplies each image once and is narrower
    assert 0.15 < first / second < 0.3
    assert balanced_split([first, second], 2) == [range(0, 1), range(1, 2)]
    inverse = model.pipeline_costs(StageCost(128, 9, False))
    assert inverse[1] > 4 * second


def snapshot(model: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "settings",
    [
        {"model": "ffnet", "layers": [16, 12, 8]},
        {"model": "ffnet", "layers": [16, 12, 8], "model_options": {"recompute": True}},
        {"model": "ffc", "layers": [16, 12, 8], "model_options": {"schedule": "joint"}},
        {"model": "ffc", "layers": [16, 12, 8], "negatives": "inverse"},
    ],
)
def test_stage_steps_chained_in_one_process_are_the_models_step(settings: dict[str, Any]) -> None:
    run = run_of(**settings)
    whole = run.model
    staged = copy.deepcopy(whole)
    stages = staged
    assert isinstance(stages, PipelineModel)
    x, y = run.data.train.x[:20], run.data.train.y[:20]
    for _ in range(3):
        state = torch.get_rng_state()
        whole_loss = whole.train_batch(Batch(x, y), run.negatives)
        torch.set_rng_state(state)
        first = stages.train_stage(Batch(x, y), run.negatives, None, range(0, 1))
        second = stages.train_stage(Batch(x, y), run.negatives, first.send, range(1, 3))
        assert float(first.loss + second.loss) == pytest.approx(float(whole_loss), rel=1e-6)
    for key, value in snapshot(whole).items():
        assert torch.equal(staged.state_dict()[key], value), key
    test_x = run.data.test.x[:30]
    readouts = {"goodness": getattr(whole, "goodness_per_label")(test_x)}  # noqa: B009
    if settings["model"] == "ffc":
        readouts["logits"] = getattr(whole, "logits")(test_x)  # noqa: B009
    for readout, expected in readouts.items():
        below = stages.score_stage(test_x, None, range(0, 2), readout)
        (scores,) = stages.score_stage(test_x, below, range(2, 3), readout)
        assert torch.equal(scores, expected), readout


@pytest.fixture
def lone_group() -> Any:
    """A gloo process group of this process alone (world size 1)."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{free_port()}",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=30),
    )
    yield dist.group.WORLD
    dist.destroy_process_group()


def test_a_stop_vote_is_read_lag_batches_later(lone_group: Any) -> None:
    vote = StopVote(lone_group, lag=2)
    assert vote.vote(1, None) is None and vote.vote(2, signal.SIGTERM) is None
    assert vote.vote(3, None) is None  # the vote of batch 1 is in: no stop
    assert vote.vote(4, None) == signal.SIGTERM  # batch 2's vote asked for one
    vote.drain()


def test_a_failed_check_fails_on_every_rank(lone_group: Any) -> None:
    def fails() -> None:
        raise DivergenceError("layer 'layers.1' went silent")

    with pytest.raises(DivergenceError, match=r"rank 0: layer 'layers\.1' went silent"):
        agree_on_failure(fails, lone_group, all_must_fail=False)
    agree_on_failure(lambda: None, lone_group, all_must_fail=True)


def parameters_of(model: torch.nn.Module) -> dict[str, Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def test_deferred_steps_are_taken_when_settled(lone_group: Any) -> None:
    run = run_of(model="ffc", layers=[16, 12], model_options={"schedule": "joint"})
    model, twin = run.model, copy.deepcopy(run.model)
    averaging = GradientAveraging(lone_group, torch.device("cpu"))
    averaging.install(model, model.optimizers(), deferred=True)
    x, y = run.data.train.x[:20], run.data.train.y[:20]
    before, state = parameters_of(model), torch.get_rng_state()
    model.train_batch(Batch(x, y), run.negatives)
    # every optimizer was asked to step, none did: its step waits for the averages
    assert all(torch.equal(v, before[k]) for k, v in parameters_of(model).items())
    averaging.settle()
    torch.set_rng_state(state)
    twin.train_batch(Batch(x, y), run.negatives)
    expected = parameters_of(twin)
    changed = [k for k, v in parameters_of(model).items() if not torch.equal(v, before[k])]
    assert changed and all(torch.equal(parameters_of(model)[k], expected[k]) for k in expected)
    averaging.remove()  # the optimizers step at once again
    assert all("step" not in vars(optimizer) for optimizer in model.optimizers())


def test_overlapped_averaging_trains_layer_by_layer_when_the_model_allows() -> None:
    ffnet = run_of(model="ffnet", layers=[16, 12, 8]).model
    stages = layer_stages(ffnet)
    assert [layers for layers, _ in stages] == [range(0, 1), range(1, 2), range(2, 3)]
    assert [opts for _, opts in stages] == [[layer.optimizer] for layer in ffnet.layers]
    ffc = run_of(model="ffc", layers=[16, 12], model_options={"schedule": "joint"}).model
    (_, first), (_, top) = layer_stages(ffc)
    assert first == [ffc.layers[0].optimizer]
    assert top == [ffc.layers[1].optimizer, ffc.classifier_optimizer]  # the read-out's too
    # recompute reads a layer again after its step: the step cannot wait
    assert layer_stages(run_of(model="ffnet", model_options={"recompute": True}).model) == []
    assert layer_stages(run_of(model="ffrnn").model) == []  # not trained layer by layer


class Failure:
    def __init__(self, exitcode: int, timestamp: int, pid: int = 1) -> None:
        self.exitcode, self.timestamp, self.pid = exitcode, timestamp, pid


def test_the_launcher_names_the_rank_that_failed_first() -> None:
    killed = {0: Failure(2, 5), 1: Failure(-signal.SIGKILL, 5)}
    assert launch._root_cause(killed)[0] == 1  # rank 0 failed because rank 1 died
    stopped = {0: Failure(2, 5), 1: Failure(-signal.SIGTERM, 5)}
    assert launch._root_cause(stopped)[0] == 0  # the launcher stopped rank 1 after rank 0
    line, status = launch.describe_failure(1, -signal.SIGKILL, 42)
    assert line.startswith("rank 1 (pid 42) was killed by SIGKILL") and status == 137
    assert launch.describe_failure(0, 2, 7) == ("rank 0 (pid 7) exited with status 2", 2)
    assert (
        launch.describe_failure(0, 143, 7)[0]
        == "rank 0 (pid 7) stopped on SIGTERM (exit status 143)"
    )


def test_nproc_comes_from_the_options_the_file_or_the_checkpoint(tmp_path: Path) -> None:
    assert launch.requested_processes({}, {}, None) == 1
    assert launch.requested_processes({"nproc": 3}, {"nproc": 2}, None) == 3
    assert launch.requested_processes({}, {"nproc": 2}, None) == 2
    run = run_of(nproc=4)
    save_run(run, tmp_path / "run.pt")
    assert launch.requested_processes({}, {}, str(tmp_path / "run.pt")) == 4
    assert launch.requested_processes({"nproc": 1}, {}, str(tmp_path / "run.pt")) == 1


@pytest.mark.parametrize(
    ("key", "value"), [("nproc", 0), ("parallel", "pipes"), ("data_parallel", 0), ("nproc", True)]
)
def test_the_settings_check_their_values(key: str, value: object) -> None:
    with pytest.raises((InvalidValueError, ConfigError), match=key):
        TrainConfig.from_dict({key: value})
