"""The per-batch context: what a training step computes once (the first layer's image
drive, FF+C's neutral pass) travels in the Batch from the model to the negative sampler
and the layers, and is forgotten once a layer has updated. Also: layers report their own
steps to the model's observer, and models report the components they were built from."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.config import TrainConfig
from ffcore.interfaces import (
    Batch,
    FFLayer,
    FFModel,
    LayerStepResult,
    NegativeBatch,
    NegativeSampler,
)
from ffcore.runs import component_names
from ffcore.training import build_run
from ffplugins.dense import FFDense
from ffplugins.ffc import FFC
from ffplugins.ffnet import FFNet
from tests.plugins.helpers import StepRecorder, record_drives


def _drives(monkeypatch: pytest.MonkeyPatch, model: FFNet) -> list[Tensor]:
    """Every ``image_drive`` the model's first layer computes from now on."""
    first = model.layers[0]
    assert isinstance(first, FFDense)
    return record_drives(monkeypatch, first)


def _ffnet(**options: Any) -> FFNet:
    torch.manual_seed(0)
    model = ffcore.create_model("ffnet", input_shape=(1, 4, 4), num_classes=5, **options)
    assert isinstance(model, FFNet)
    return model


class _Watcher:
    """An observer that notes, at each layer's report, what the batch still caches."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.seen: list[tuple[int, bool, bool]] = []

    def layer_trained(self, index: int, layer: FFLayer, result: LayerStepResult) -> None:
        cached = (self.batch.image_drive is not None, self.batch.neutral_features is not None)
        self.seen.append((index, *cached))


@pytest.mark.parametrize("model_name", ["ffnet", "ffc"])
def test_the_cache_lives_until_the_first_layer_has_updated(
    model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    options = {"schedule": "joint"} if model_name == "ffc" else {}
    model = ffcore.create_model(
        model_name, input_shape=(1, 4, 4), num_classes=5, layers=[12, 8, 6], **options
    )
    assert isinstance(model, FFNet)
    model.on_epoch_start(0, 2)
    drives = _drives(monkeypatch, model)
    batch = Batch(torch.randn(6, 1, 4, 4), torch.arange(6) % 5)
    watcher = _Watcher(batch)
    model.observer = watcher
    model.train_batch(batch, ffcore.create_negatives("hard"))
    joint = model_name == "ffc"
    # The first layer reports its step with the cache still there (its own drive was it);
    # the layers above see it gone: it was computed with the first layer's old weights.
    assert watcher.seen == [(0, True, joint), (1, False, False), (2, False, False)]
    assert len(drives) == 1
    assert batch.image_drive is None and batch.neutral_features is None


def test_scoring_a_batch_computes_its_drive_once_and_matches_the_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _ffnet(layers=[12, 8])
    drives = _drives(monkeypatch, model)
    batch = Batch(torch.randn(7, 1, 4, 4), torch.arange(7) % 5)
    first = model.goodness_per_label(batch)
    second = model.goodness_per_label(batch)
    assert len(drives) == 1 and batch.image_drive is drives[0]
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, model.goodness_per_label(batch.x))
    assert len(drives) == 1  # plain inputs: nothing shared, nothing cached
    batch.invalidate()
    model.goodness_per_label(batch)
    assert len(drives) == 2


class _Spy(NegativeSampler):
    """Records what the sampler sees in the batch, then picks random wrong labels."""

    def __init__(self, name: str) -> None:
        self.inner = ffcore.create_negatives(name)
        self.cached: list[bool] = []

    def __call__(self, batch: Batch, model: FFModel) -> NegativeBatch:
        negative = self.inner(batch, model)
        self.cached.append(batch.image_drive is not None)
        return negative


@pytest.mark.parametrize(("sampler", "cached"), [("random", False), ("hard", True)])
def test_the_step_reuses_the_drive_the_sampler_computed(
    sampler: str, cached: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _ffnet(layers=[12, 8])
    drives = _drives(monkeypatch, model)
    spy = _Spy(sampler)
    model.train_batch(Batch(torch.randn(6, 1, 4, 4), torch.arange(6) % 5), spy)
    assert spy.cached == [cached]  # hard scores every label from the drive; random doesn't
    assert len(drives) == 1  # and the step computed it only if the sampler had not


def test_ffc_neutral_sampler_reads_the_batch_neutral_pass() -> None:
    torch.manual_seed(0)
    model = ffcore.create_model(
        "ffc", input_shape=(1, 4, 4), num_classes=3, layers=[8], schedule="joint"
    )
    assert isinstance(model, FFC)
    model.on_epoch_start(0, 2)
    passes: list[int] = []
    layer_activations = model.layer_activations

    def counted(source: Tensor | Batch) -> list[Tensor]:
        passes.append(1)
        return layer_activations(source)

    model.layer_activations = counted  # type: ignore[method-assign]
    batch = Batch(torch.randn(8, 1, 4, 4), torch.arange(8) % 3)
    model.train_batch(batch, ffcore.create_negatives("neutral"))
    assert len(passes) == 1  # the classifier's features and the sampler's logits share it
    with torch.no_grad():
        features = model.features(batch.x)
        batch.neutral_features = features
        torch.testing.assert_close(model.logits(batch), model.logits(batch.x))


def test_the_model_hands_the_observer_to_its_layers_with_their_index() -> None:
    model = _ffnet(layers=[12, 8, 6])

    recorder = StepRecorder()
    model.observer = recorder
    assert model.observer is recorder
    assert [layer._observer for layer in model.ff_layers()] == [recorder] * 3
    first = model.layers[0]
    assert isinstance(first, FFLayer)
    first.train_step(torch.randn(2, 21), torch.randn(2, 21))  # a layer on its own reports too
    assert [(index, layer) for index, layer, _ in recorder.calls] == [(0, first)]
    model.observer = None
    model.train_batch(Batch(torch.randn(4, 1, 4, 4), torch.arange(4)), _Spy("random"))
    assert len(recorder.calls) == 1


def test_models_report_the_components_they_were_built_from() -> None:
    model = _ffnet(layers=[8], layer="FFLinear", goodness="Mean_Squares")
    assert model.component_names() == {
        "layer": "ffdense",
        "goodness": "mean-squares",
        "loss": "softplus-threshold",
    }
    rnn = ffcore.create_model("ffrnn", input_shape=(4,), num_classes=3, layers=[6], loss="symba")
    assert rnn.component_names() == {
        "layer": "ffrecurrent",
        "goodness": "sum-squares",
        "loss": "symba",
    }
    built = FFNet([FFDense(7, 4, goodness=ffcore.create_goodness("sum-squares"))], 4, 3)
    assert built.component_names() == {
        "layer": None,
        "goodness": None,
        "loss": "softplus-threshold",
    }
    bp = ffcore.create_model("bp", input_shape=(4,), num_classes=3, layers=[6])
    assert bp.component_names() == {"layer": None, "goodness": None, "loss": None}


def test_the_run_lists_its_components_from_the_model() -> None:
    config = TrainConfig(
        preset="plain", model="ffc", layers=[8], goodness="mean-squares", device="cpu"
    )
    run = build_run(config)
    assert component_names(run) == {
        "model": "ffc",
        "dataset": "digits",
        "probe": "classifier",
        "negatives": "random",
        "layer": "ffdense",
        "goodness": "mean-squares",
        "loss": "softplus-threshold",
    }
