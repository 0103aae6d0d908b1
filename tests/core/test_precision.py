"""Mixed precision: the ``precision`` setting, its autocast context and bf16 training."""

from __future__ import annotations

import pytest
import torch

from ffcore.config import TrainConfig
from ffcore.errors import InvalidValueError
from ffcore.precision import PRECISIONS, autocast, check_precision
from ffcore.training import build_run, evaluate, train
from ffplugins.dense import FFDense
from ffplugins.ffnet import FFNet


def test_check_precision_names_field_value_and_choices() -> None:
    assert [check_precision(name) for name in PRECISIONS] == ["fp32", "bf16"]
    with pytest.raises(
        InvalidValueError, match=r"invalid precision: 'fp16' \(expected 'fp32' or 'bf16'\)"
    ):
        check_precision("fp16")
    with pytest.raises(InvalidValueError, match="invalid precision: 'fp16'"):
        TrainConfig(precision="fp16")


def test_autocast_runs_products_in_the_precision_asked() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("cpu", "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    assert (a @ b).dtype == torch.float32  # and only inside the block


def test_autocast_refuses_a_device_without_bf16_autocast() -> None:
    with pytest.raises(InvalidValueError, match=r"precision: 'bf16'.*device type 'meta'"):
        autocast("meta", "bf16")
    with autocast("meta", "fp32"):  # fp32 needs nothing from the device
        pass


def test_weights_updated_inside_the_block_are_used_at_once() -> None:
    """No cast cache: an FF layer that steps inside the block multiplies with the new
    weights on its next pass (a recurrent net updates every frame of a batch)."""
    torch.manual_seed(0)
    layer = FFDense(8, 4, activation="identity")
    x = torch.randn(5, 8)
    with autocast("cpu", "bf16"):
        before = layer(x)
        with torch.no_grad():
            layer.weight.mul_(-1.0)
        after = layer(x)
    bias = layer.bias
    assert bias is not None
    # identity activation: flipping the weights flips the weight part of the output
    torch.testing.assert_close(after.float() - bias, -(before.float() - bias), atol=0.02, rtol=0.02)


def digits_run(precision: str, model: str) -> dict[str, float]:
    config = TrainConfig(
        model=model,
        dataset="digits",
        layers=[64, 64],
        epochs=20,
        device="cpu",
        precision=precision,
        preset=None,
    )
    run = build_run(config)
    metrics = train(run)
    for name, parameter in run.model.named_parameters():
        assert parameter.dtype == torch.float32, name  # master weights stay fp32
    for optimizer in run.model.optimizers():
        for state in optimizer.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    return metrics


@pytest.mark.parametrize("model", ["ffnet", "ffc"])
def test_a_bf16_run_learns_as_fp32_does_and_keeps_fp32_weights(model: str) -> None:
    mixed = digits_run("bf16", model)["test_acc"]
    full = digits_run("fp32", model)["test_acc"]
    assert mixed > 0.6  # chance is 0.1
    assert abs(mixed - full) <= 0.05


def test_the_trainer_runs_layer_products_in_bf16() -> None:
    run = build_run(TrainConfig(layers=[32, 32], epochs=1, device="cpu", precision="bf16", use=0.3))
    seen: list[torch.dtype] = []
    model = run.model
    assert isinstance(model, FFNet)
    second = model.layers[1]
    assert isinstance(second, FFDense)
    handle = second.linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    train(run)
    handle.remove()
    assert seen and set(seen) == {torch.bfloat16}


def test_evaluate_in_bf16_agrees_with_fp32() -> None:
    run = build_run(TrainConfig(layers=[64, 64], epochs=20, device="cpu"))
    train(run)
    full = evaluate(run.model, run.probe, run.data.test)
    mixed = evaluate(run.model, run.probe, run.data.test, precision="bf16")
    assert full > 0.6
    assert abs(full - mixed) <= 0.03  # a few of the 360 digits may flip
