"""FF+C, the backprop baseline and the classifier probe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.checkpoint import load_checkpoint, save_checkpoint
from ffcore.config import TrainConfig
from ffcore.errors import FFLibError, InvalidValueError
from ffcore.interfaces import Batch, FFModel
from ffcore.precision import autocast
from ffcore.training import build_run, train
from ffplugins.bp import BackpropMLP
from ffplugins.dense import FFDense
from ffplugins.ffc import FFC


def make_ffc(**options: Any) -> FFC:
    torch.manual_seed(0)
    model = ffcore.create_model(
        "ffc", input_shape=(1, 4, 4), num_classes=3, layers=[8, 6], **options
    )
    assert isinstance(model, FFC)
    return model


def first_weight(model: FFC) -> Tensor:
    layer = model.layers[0]
    assert isinstance(layer, FFDense)
    return layer.linear.weight


def test_ffc_parameters_cover_layers_and_classifier() -> None:
    model = make_ffc()
    expected = (16 + 3) * 8 + 8 + 8 * 6 + 6 + (8 + 6) * 3 + 3
    assert sum(p.numel() for p in model.parameters()) == expected
    keys = set(model.state_dict())
    assert {"layers.0.linear.weight", "layers.1.linear.weight", "classifier.weight"} <= keys
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert len(model.optimizers()) == 3


def test_ffc_inference_uses_the_neutral_label_and_no_tryall() -> None:
    model = make_ffc()
    x = torch.randn(5, 1, 4, 4)
    calls: list[Tensor] = []
    first = model.layers[0]
    assert isinstance(first, FFDense)
    forward = first.forward

    def spy(rows: Tensor) -> Tensor:
        calls.append(rows)
        return forward(rows)

    first.forward = spy  # type: ignore[method-assign, assignment]
    model.goodness_per_label = None  # type: ignore[assignment, method-assign]
    predictions = ffcore.create_probe("classifier").predict(model, x)
    assert predictions.shape == (5,)
    assert len(calls) == 1 and calls[0].shape == (5, 19)  # one pass, one row per sample
    assert torch.equal(calls[0][:, 16:], torch.zeros(5, 3))  # the neutral label only
    h = torch.cat((x.reshape(5, -1), torch.zeros(5, 3)), dim=1)
    activations = []
    for layer in model.layers:
        h = layer(h)
        activations.append(h)
    expected = model.classifier(torch.cat(activations, dim=1))
    assert torch.allclose(model.logits(x), expected)
    assert torch.equal(predictions, expected.argmax(dim=1))


def test_ffc_logits_are_not_rectified() -> None:
    model = make_ffc()
    with torch.no_grad():
        model.classifier.bias.fill_(-100.0)
    logits = model.logits(torch.randn(4, 1, 4, 4))
    assert (logits < 0).all()  # FFLib 0.3.0 applied ReLU here, making every logit 0


def test_two_phase_and_joint_schedules() -> None:
    model = make_ffc(ff_epochs=1)
    sampler = ffcore.create_negatives("random")
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 3, (16,))
    model.on_epoch_start(0, 3)
    ff_before = first_weight(model).clone()
    classifier_before = model.classifier.weight.clone()
    model.train_batch(Batch(x, y), sampler)
    assert not torch.equal(first_weight(model), ff_before)
    assert torch.equal(model.classifier.weight, classifier_before)
    model.on_epoch_start(1, 3)
    ff_before = first_weight(model).clone()
    model.train_batch(Batch(x, y), sampler)
    assert torch.equal(first_weight(model), ff_before)
    assert not torch.equal(model.classifier.weight, classifier_before)
    joint = make_ffc(schedule="joint")
    joint.on_epoch_start(0, 3)
    ff_before, classifier_before = (
        first_weight(joint).clone(),
        joint.classifier.weight.clone(),
    )
    joint.train_batch(Batch(x, y), sampler)
    assert not torch.equal(first_weight(joint), ff_before)
    assert not torch.equal(joint.classifier.weight, classifier_before)
    with pytest.raises(InvalidValueError, match="schedule"):
        make_ffc(schedule="sometimes")


def test_joint_schedule_with_ff_epochs_then_trains_the_classifier_alone() -> None:
    model = make_ffc(schedule="joint", ff_epochs=2)
    sampler = ffcore.create_negatives("random")
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 3, (16,))
    phases = []
    for epoch in range(4):
        model.on_epoch_start(epoch, 4)
        phases.append(model.phase)
        ff_before = first_weight(model).clone()
        classifier_before = model.classifier.weight.clone()
        model.train_batch(Batch(x, y), sampler)
        assert not torch.equal(model.classifier.weight, classifier_before)
        assert torch.equal(first_weight(model), ff_before) == (epoch >= 2)
    assert phases == ["both", "both", "classifier", "classifier"]
    assert make_ffc(schedule="joint").ff_epochs_of(4) == 4  # all joint by default
    assert make_ffc(schedule="joint", ff_epochs=9).ff_epochs_of(4) == 4


@pytest.mark.parametrize(
    ("options", "expected_ff", "expected_classifier"),
    [
        # joint, all epochs: one schedule over the run for every optimizer
        ({"schedule": "joint"}, [(e, 6) for e in range(6)], [(e, 6) for e in range(6)]),
        # joint for 4 epochs: the FF cooldown ends at epoch 4, the classifier restarts
        (
            {"schedule": "joint", "ff_epochs": 4},
            [(0, 4), (1, 4), (2, 4), (3, 4), (3, 4), (3, 4)],
            [(0, 4), (1, 4), (2, 4), (3, 4), (0, 2), (1, 2)],
        ),
        # two-phase (FFLib 0.3.0's), half and half: each phase its own schedule
        (
            {"schedule": "two-phase"},
            [(0, 3), (1, 3), (2, 3), (2, 3), (2, 3), (2, 3)],
            [(0, 3), (0, 3), (0, 3), (0, 3), (1, 3), (2, 3)],
        ),
    ],
)
def test_schedule_positions_follow_the_phases(
    options: dict[str, Any],
    expected_ff: list[tuple[int, int]],
    expected_classifier: list[tuple[int, int]],
) -> None:
    model = make_ffc(**options)
    positions = [model.schedule_positions(epoch, 6) for epoch in range(6)]
    assert all(len(p) == len(model.optimizers()) == 3 for p in positions)
    assert [p[0] for p in positions] == [p[1] for p in positions] == expected_ff
    assert [p[2] for p in positions] == expected_classifier


def lrs_per_epoch(schedule: str, **model_options: Any) -> tuple[list[list[float]], FFC]:
    """Train a small joint FF+C for 4 epochs (FF lr 0.02, classifier 0.01); each epoch's
    learning rates, in ``optimizers()`` order, and the trained model."""
    config = TrainConfig(
        model="ffc",
        layers=[8],
        epochs=4,
        lr=0.02,
        lr_schedule=schedule,
        device="cpu",
        model_options={"schedule": "joint", "classifier_lr": 0.01, **model_options},
    )
    run = build_run(config)
    seen: list[list[float]] = []

    class Spy:
        @ffcore.hookimpl
        def fflib_epoch_end(self) -> None:
            seen.append([opt.param_groups[0]["lr"] for opt in run.model.optimizers()])

    ffcore.get_plugin_manager().register(Spy(), name="spy")
    train(run)
    assert isinstance(run.model, FFC)
    return seen, run.model


def test_trainer_cools_the_ff_layers_down_within_their_phase() -> None:
    seen, _ = lrs_per_epoch("linear-cooldown", ff_epochs=2)
    ff = [lrs[0] for lrs in seen]
    classifier = [lrs[1] for lrs in seen]
    # linear-cooldown over 2 epochs: factors 1 and 1/2
    assert ff[:2] == pytest.approx([0.02, 0.01])  # the FF phase's own cooldown
    assert classifier[:2] == pytest.approx([0.01, 0.005])
    assert classifier[2:] == pytest.approx([0.01, 0.005])  # restarted when alone


def test_readout_lr_applies_once_the_classifier_trains_alone() -> None:
    seen, model = lrs_per_epoch("constant", ff_epochs=2, readout_lr=0.002)
    assert model.lr_scales(1, 4) == [1.0, 1.0]
    assert model.lr_scales(2, 4) == pytest.approx([1.0, 0.2])
    assert [lrs[1] for lrs in seen] == pytest.approx([0.01, 0.01, 0.002, 0.002])
    assert [lrs[0] for lrs in seen] == pytest.approx([0.02] * 4)  # the FF layers keep theirs
    assert model.optimizers()[1].param_groups[0]["lr"] == pytest.approx(0.01)  # restored


def test_without_readout_lr_the_classifier_keeps_its_rate() -> None:
    model = make_ffc(schedule="joint", ff_epochs=1)
    assert all(model.lr_scales(epoch, 3) == [1.0, 1.0, 1.0] for epoch in range(3))


@pytest.mark.parametrize("field", ["readout_lr", "classifier_lr"])
@pytest.mark.parametrize("value", [0.0, -1e-3, True, "fast"])
def test_bad_read_out_rates_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidValueError, match=field) as caught:
        make_ffc(schedule="joint", **{field: value})
    assert "a positive finite number" in str(caught.value)


def test_joint_step_shares_one_neutral_pass_with_the_neutral_sampler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = make_ffc(schedule="joint")
    model.on_epoch_start(0, 3)
    x, y = torch.randn(32, 1, 4, 4), torch.arange(32) % 3
    with torch.no_grad():
        before = model.features(x)  # the features before this batch's update
        model.classifier.weight.normal_(0, 5)  # a read-out with firm opinions
    passes: list[Tensor] = []
    original = model.features

    def counted(inputs: Tensor) -> Tensor:
        out = original(inputs)
        passes.append(out)
        return out

    monkeypatch.setattr(model, "features", counted)
    picked: list[Tensor] = []
    sampler = ffcore.create_negatives("neutral", temperature=0.0)

    def spy(batch: Batch, m: FFModel) -> Any:
        negative = sampler(batch, m)
        picked.append(negative.y)
        return negative

    with torch.no_grad():
        expected = model.classifier(before).scatter(1, y.unsqueeze(1), float("-inf")).argmax(1)
    classifier_before = model.classifier.weight.clone()
    model.train_batch(Batch(x, y), spy)  # type: ignore[arg-type]
    assert len(passes) == 1  # the update came after it: the same features, up to rounding
    assert torch.allclose(passes[0], before, atol=1e-6)
    assert torch.equal(picked[0], expected)
    assert not torch.equal(model.classifier.weight, classifier_before)
    model.features = original  # type: ignore[method-assign]
    assert model.logits(x).shape == (32, 3)  # outside a step: a fresh pass


def test_bp_baseline_shapes_and_options() -> None:
    model = ffcore.create_model("bp", input_shape=(1, 4, 4), num_classes=3, layers=[8, 6])
    assert isinstance(model, BackpropMLP)
    assert sum(p.numel() for p in model.parameters()) == 16 * 8 + 8 + 8 * 6 + 6 + 6 * 3 + 3
    assert model.logits(torch.randn(2, 1, 4, 4)).shape == (2, 3)
    with pytest.raises(InvalidValueError, match="threshold"):
        ffcore.create_model("bp", input_shape=(1, 4, 4), num_classes=3, threshold=1.0)
    with pytest.raises(FFLibError, match="goodness_per_label"):
        ffcore.create_probe("tryall").check(model)


def test_classifier_probe_rejects_models_without_logits() -> None:
    model = ffcore.create_model("ffnet", input_shape=(4,), num_classes=2, layers=[4])
    with pytest.raises(FFLibError, match="probe 'classifier' needs a model with a read-out"):
        ffcore.create_probe("classifier").check(model)


@pytest.mark.parametrize(
    ("model", "options", "minimum"),
    [
        ("ffc", {"lr": 0.01, "model_options": {"classifier_lr": 0.01}}, 0.6),
        ("ffc", {"lr": 0.01, "model_options": {"schedule": "joint", "classifier_lr": 0.01}}, 0.6),
        ("bp", {"lr": 0.01}, 0.85),
    ],
)
def test_learns_digits_well_above_chance(
    model: str, options: dict[str, object], minimum: float
) -> None:
    config = TrainConfig(model=model, layers=[128], epochs=6, device="cpu", **options)  # type: ignore[arg-type]
    metrics = train(build_run(config))
    assert metrics["test_acc"] > minimum


@pytest.mark.parametrize("name", ["ffc", "bp"])
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    options: dict[str, Any] = {"layers": [8]}
    model = ffcore.create_model(name, input_shape=(1, 4, 4), num_classes=3, **options)
    sampler = ffcore.create_negatives("random")
    x, y = torch.randn(16, 1, 4, 4), torch.randint(0, 3, (16,))
    model.on_epoch_start(1, 2)
    model.train_batch(Batch(x, y), sampler)
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        model_name=name,
        model_options=options,
        input_shape=(1, 4, 4),
        num_classes=3,
    )
    loaded = load_checkpoint(path).model
    assert torch.equal(model.logits(x), loaded.logits(x))  # type: ignore[operator]


def test_ffc_logits_under_bf16_are_fp32_and_close_to_fp32() -> None:
    model = make_ffc()
    x = torch.randn(5, 1, 4, 4)
    with torch.no_grad():
        expected = model.logits(x)
        with autocast("cpu", "bf16"):
            mixed = model.logits(x)
    assert mixed.dtype == torch.float32  # the layers' scores add up in float32
    torch.testing.assert_close(mixed, expected, rtol=0.02, atol=0.02)


def test_ffc_read_out_trains_in_fp32_under_bf16() -> None:
    """The read-out has ten outputs: mixed precision leaves it in float32."""
    model = make_ffc(schedule="joint")
    model.on_epoch_start(0, 2)
    seen: list[torch.dtype] = []
    model.classifier.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x, y = torch.randn(8, 1, 4, 4), torch.arange(8) % 3
    with autocast("cpu", "bf16"):
        model.train_batch(Batch(x, y), ffcore.create_negatives("random"))
    assert seen == [torch.float32]
