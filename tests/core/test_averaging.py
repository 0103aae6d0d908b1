"""Weight averaging (``ema_decay``): what the average holds and when the model holds it
(exact resumes with it: ``test_resume.py``; several processes: ``tests/distributed``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ffcore.averaging import WeightAverage, warmed_decay
from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError
from ffcore.runs import resume_run, save_run
from ffcore.training import build_run, evaluate, train
from tests.core.test_resume import CONFIG, assert_bitwise_equal, final_weights

AVERAGED = {**CONFIG, "ema_decay": 0.9}


def two_part_model() -> tuple[nn.Sequential, list[torch.optim.Optimizer]]:
    """Two linear layers, each with its own SGD optimizer (as FF layers have)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.SGD(model[0].parameters(), lr=0.1),
        torch.optim.SGD(model[1].parameters(), lr=0.1),
    ]
    return model, optimizers


def param(model: nn.Module, name: str) -> nn.Parameter:
    """``model``'s parameter ``name`` (e.g. ``0.weight``)."""
    return dict(model.named_parameters())[name]


def step(model: nn.Sequential, optimizers: list[torch.optim.Optimizer], which: list[int]) -> None:
    """One gradient step of the optimizers ``which`` on a random batch."""
    loss = model(torch.randn(5, 3)).square().mean()
    loss.backward()
    for index in which:
        optimizers[index].step()
    for optimizer in optimizers:
        optimizer.zero_grad()


def test_warmed_decay_starts_low_and_reaches_the_decay() -> None:
    assert warmed_decay(0.999, 0) == pytest.approx(0.1)
    assert warmed_decay(0.999, 10) == pytest.approx(11 / 20)
    assert warmed_decay(0.9, 10_000) == 0.9


def test_the_average_follows_each_optimizer_step_by_its_formula() -> None:
    model, optimizers = two_part_model()
    average = WeightAverage(model, optimizers, decay=0.5)
    expected = {name: p.detach().clone() for name, p in model.named_parameters()}
    for count in range(6):
        step(model, optimizers, [0, 1])
        decay = 0.0 if count == 0 else warmed_decay(0.5, count)
        for name, parameter in model.named_parameters():
            expected[name] = decay * expected[name] + (1 - decay) * parameter.detach()
    for name in expected:
        torch.testing.assert_close(average.averages[name], expected[name])
    assert average.updates == [6, 6]
    # the average lags the weights: it is not simply the last step's
    assert not torch.equal(average.averages["0.weight"], param(model, "0.weight"))


def test_only_the_optimizers_that_step_move_their_averages() -> None:
    model, optimizers = two_part_model()
    average = WeightAverage(model, optimizers, decay=0.9)
    second = param(model, "1.weight").detach().clone()
    step(model, optimizers, [0])
    step(model, optimizers, [0])
    assert average.updates == [2, 0] and average.stepped == [True, False]
    assert torch.equal(average.averages["1.weight"], second)
    assert not torch.equal(average.averages["0.weight"], param(model, "0.weight"))


def test_the_first_step_starts_from_the_weights_it_reached() -> None:
    model, optimizers = two_part_model()
    average = WeightAverage(model, optimizers, decay=0.999)
    with torch.no_grad():
        param(model, "0.weight").add_(100.0)  # set by something else (a plugin, a resumed file)
    step(model, optimizers, [0])
    assert torch.equal(average.averages["0.weight"], param(model, "0.weight").detach())


def test_epoch_end_puts_the_averages_in_and_epoch_start_takes_them_out() -> None:
    model, optimizers = two_part_model()
    average = WeightAverage(model, optimizers, decay=0.9)
    for _ in range(3):
        step(model, optimizers, [0, 1])
    raw = {name: p.detach().clone() for name, p in model.named_parameters()}
    average.epoch_end()
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, average.averages[name])
        assert not torch.equal(parameter, raw[name])
    average.epoch_start()
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, raw[name])


def test_a_part_that_stopped_training_keeps_its_average() -> None:
    model, optimizers = two_part_model()
    average = WeightAverage(model, optimizers, decay=0.9)
    for _ in range(3):
        step(model, optimizers, [0, 1])
    average.epoch_end()
    average.epoch_start()
    step(model, optimizers, [1])  # the next epoch trains the second part alone
    average.epoch_end()
    average.epoch_start()
    assert torch.equal(param(model, "0.weight"), average.averages["0.weight"])
    assert not torch.equal(param(model, "1.weight"), average.averages["1.weight"])


def test_a_part_not_yet_trained_is_left_as_it_is() -> None:
    model, optimizers = two_part_model()
    average = WeightAverage(model, optimizers, decay=0.9)
    step(model, optimizers, [0])
    with torch.no_grad():
        param(model, "1.weight").fill_(3.0)
    average.epoch_end()
    assert bool((param(model, "1.weight") == 3.0).all())
    assert average.training is not None and "1.weight" not in average.training


@pytest.mark.parametrize("decay", [1.0, -0.1, float("nan")])
def test_a_decay_outside_0_to_1_is_refused(decay: float) -> None:
    with pytest.raises(InvalidValueError, match="ema_decay"):
        TrainConfig(ema_decay=decay)


def test_a_run_evaluates_tests_and_keeps_the_averaged_weights() -> None:
    settings = {**AVERAGED, "keep": "last", "epochs": 12}  # long enough to learn
    run = build_run(TrainConfig(**settings))  # type: ignore[arg-type]
    metrics = train(run)
    average = run.average
    assert average is not None and average.training is not None
    for name, parameter in run.model.named_parameters():
        assert torch.equal(parameter, average.averages[name])
        assert not torch.equal(parameter, average.training[name])
    assert metrics["test_acc"] == evaluate(run.model, run.probe, run.data.test)
    assert run.data.val is not None
    assert metrics["val_acc"] == evaluate(run.model, run.probe, run.data.val)
    assert metrics["test_acc"] > 0.5  # digits: ten classes


def test_ffc_read_out_trains_on_the_averaged_ff_layers() -> None:
    settings = {
        **AVERAGED,
        "model": "ffc",
        "epochs": 3,
        "model_options": {"ff_epochs": 1, "schedule": "joint"},
    }
    run = build_run(TrainConfig(**settings))  # type: ignore[arg-type]
    train(run)
    average = run.average
    assert average is not None and average.training is not None
    ff_names = [name for name, _ in run.model.named_parameters() if name.startswith("layers.")]
    assert ff_names
    for name in ff_names:
        assert torch.equal(average.training[name], average.averages[name])
    assert not torch.equal(
        average.training["classifier.weight"], average.averages["classifier.weight"]
    )


def test_a_finished_averaged_run_trains_on_from_its_raw_weights(tmp_path: Path) -> None:
    # a constant rate: the run of 2 epochs trained on to 3 follows the run of 3
    settings = {**AVERAGED, "lr_schedule": "constant", "keep": "last"}
    longer = build_run(TrainConfig(**{**settings, "epochs": 3}))  # type: ignore[arg-type]
    train(longer)
    shorter = build_run(TrainConfig(**{**settings, "epochs": 2}))  # type: ignore[arg-type]
    path = save_run(shorter, tmp_path / "two.pt", train(shorter))
    resumed = resume_run(path, {"epochs": 3})
    train(resumed)
    assert_bitwise_equal(final_weights(resumed), final_weights(longer))
