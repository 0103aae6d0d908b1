"""``ff train --tensorboard``: the tags, their steps and their values, read back from disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import Tensor

from ffcore import hookimpl
from ffcore.analysis import sparsity
from ffcore.cli.main import cli
from ffcore.data import num_batches
from ffcore.training import TrainingRun, build_run, train
from ffdebug import TRACER_NAME, default_trace_every
from ffdebug.debug import ff_layers
from ffdebug.errors import TracingError
from ffdebug.stats import HISTOGRAM_BINS, parameter_tags
from ffdebug.tracer import Tracer
from tests.debug.helpers import (
    Recorder,
    close,
    events,
    manager,
    scalars,
    text,
    tiny_config,
    train_tiny,
)

EVERY = 3
LAYER_SCALARS = (
    "goodness_pos_mean",
    "goodness_neg_mean",
    "separation",
    "pairs_ordered",
    "loss",
    "threshold",
    "lr",
    "hoyer",
    "dead_fraction",
    "weight_norm",
    "bias_norm",
)
LAYER_HISTOGRAMS = (
    "activations_pos",
    "activations_neg",
    "goodness_pos",
    "goodness_neg",
    "weight",
    "bias",
)


@dataclass
class Traced:
    """A traced tiny FFNet run, what the hooks saw, and its event file read back."""

    logdir: Path
    run: TrainingRun
    metrics: dict[str, float]
    recorder: Recorder
    events: Any


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Traced:
    logdir = tmp_path_factory.mktemp("traced") / "tb"
    recorder = Recorder(EVERY)
    plugins = manager()
    run, metrics = train_tiny(tiny_config(logdir, trace_every=EVERY), recorder)
    assert plugins.get_plugin(TRACER_NAME) is None  # gone once training ended
    return Traced(logdir, run, metrics, recorder, events(logdir))


def test_writes_one_event_file_with_every_tag(traced: Traced) -> None:
    assert len(list(traced.logdir.glob("events.out.tfevents.*"))) == 1
    tags = traced.events.Tags()
    expected_scalars = {f"layer{i}/{name}" for i in (0, 1) for name in LAYER_SCALARS}
    expected_scalars |= {"batch/loss", "epoch/train_loss", "epoch/val_acc", "epoch/seconds"}
    expected_scalars |= {"epoch/layer0_acc", "epoch/layer1_acc"}
    expected_scalars |= {"hparam/test_acc", "hparam/val_acc", "hparam/train_loss"}
    assert set(tags["scalars"]) == expected_scalars
    expected_histograms = {f"layer{i}/{name}" for i in (0, 1) for name in LAYER_HISTOGRAMS}
    assert set(tags["histograms"]) == expected_histograms
    assert {"run/config/text_summary", "run/components/text_summary"} <= set(tags["tensors"])
    config = text(traced.events, "run/config")
    assert "| layers | [32, 24] |" in config and f"| trace_every | {EVERY} |" in config
    components = text(traced.events, "run/components")
    assert "| goodness | sum-squares |" in components and "| model | ffnet |" in components
    hparams = traced.events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert "_hparams_/session_end_info" in hparams


def test_step_counts(traced: Traced) -> None:
    per_epoch = num_batches(len(traced.run.data.train), traced.run.config.batch_size)
    total = 2 * per_epoch
    traced_steps = [step for step in range(total) if step % EVERY == 0]
    for tag in ("batch/loss", "layer0/separation", "layer1/dead_fraction", "layer1/weight_norm"):
        assert sorted(scalars(traced.events, tag)) == traced_steps, tag
    for tag in LAYER_HISTOGRAMS:
        assert [e.step for e in traced.events.Histograms(f"layer0/{tag}")] == traced_steps
    for tag in ("epoch/train_loss", "epoch/val_acc", "epoch/layer0_acc"):
        assert sorted(scalars(traced.events, tag)) == [per_epoch, total], tag
    assert sorted(scalars(traced.events, "hparam/test_acc")) == [total]


def test_layer_scalars_match_what_the_layers_saw(traced: Traced) -> None:
    for layer in (0, 1):
        seen = traced.recorder.last_frames(layer)
        assert sorted(seen) == sorted(scalars(traced.events, f"layer{layer}/separation"))
        values = {name: scalars(traced.events, f"layer{layer}/{name}") for name in LAYER_SCALARS}
        for step, item in seen.items():
            pos, neg = float(item.g_pos.mean()), float(item.g_neg.mean())
            assert item.maximise
            assert close(values["separation"][step], pos - neg, 1e-4)
            assert close(values["goodness_pos_mean"][step], pos)
            assert close(values["goodness_neg_mean"][step], neg)
            ordered = float((item.g_pos > item.g_neg).float().mean())  # one negative each
            assert close(values["pairs_ordered"][step], ordered)
            assert close(values["loss"][step], item.loss)
            assert close(values["lr"][step], item.lr)
            assert close(values["hoyer"][step], float(sparsity(item.h_pos).mean()))
            fired = item.h_pos.ne(0).any(0) | item.h_neg.ne(0).any(0)
            assert close(values["dead_fraction"][step], 1 - float(fired.float().mean()))
    losses = scalars(traced.events, "batch/loss")
    assert losses.keys() == traced.recorder.batch_losses.keys()
    assert all(close(losses[s], v) for s, v in traced.recorder.batch_losses.items())


def test_histograms_match_the_activations(traced: Traced) -> None:
    first = traced.recorder.last_frames(1)[0]
    histogram = traced.events.Histograms("layer1/activations_pos")[0].histogram_value
    assert histogram.num == first.h_pos.numel()
    assert close(histogram.min, float(first.h_pos.min()))
    assert close(histogram.max, float(first.h_pos.max()))
    assert close(histogram.sum, float(first.h_pos.sum()), 1e-4)
    assert len(histogram.bucket) == HISTOGRAM_BINS and sum(histogram.bucket) == histogram.num
    goodness = traced.events.Histograms("layer1/goodness_neg")[0].histogram_value
    assert goodness.num == first.g_neg.numel()
    weight = traced.events.Histograms("layer0/weight")[-1].histogram_value
    assert weight.num == dict(parameter_tags(ff_layers(traced.run.model)[0]))["weight"].numel()


def test_epoch_scalars_match_the_history_and_the_layers(traced: Traced) -> None:
    run = traced.run
    losses = scalars(traced.events, "epoch/train_loss")
    accuracies = scalars(traced.events, "epoch/val_acc")
    assert [losses[s] for s in sorted(losses)] == pytest.approx([h["loss"] for h in run.history])
    assert [accuracies[s] for s in sorted(accuracies)] == pytest.approx(
        [h["val_acc"] for h in run.history]
    )
    assert run.data.val is not None
    scores = run.model.layer_goodness_per_label(run.data.val.x)  # type: ignore[operator]
    alone = (scores.argmax(dim=2) == run.data.val.y).float().mean(dim=1)
    for layer in (0, 1):
        logged = scalars(traced.events, f"epoch/layer{layer}_acc")
        assert logged[max(logged)] == pytest.approx(float(alone[layer]))
    test_acc = scalars(traced.events, "hparam/test_acc")
    assert list(test_acc.values()) == pytest.approx([traced.metrics["test_acc"]])


class _Spy:
    """Sees, at each epoch end, whether the trainer wired any per-layer observer in."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool, bool]] = []

    @hookimpl
    def fflib_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        plugins = manager()
        self.seen.append(
            (
                run.model.observer is None,
                not plugins.has_implementations("fflib_layer_goodness"),
                not plugins.has_implementations("fflib_batch_end"),
            )
        )


def test_tracing_off_writes_nothing_and_costs_no_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spy = _Spy()
    train_tiny(tiny_config(None, trace_every=1), spy)
    assert spy.seen == [(True, True, True)] * 2
    assert list(tmp_path.rglob("*")) == []
    args = [
        "train",
        "--preset",
        "plain",
        "--layers",
        "16",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["ffnet-digits.pt"]


class _Untouchable(Tensor):
    """A tensor that fails the test as soon as anything looks at it."""

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        raise AssertionError(f"an untraced batch touched a tensor: {func}")


def test_untraced_batches_touch_no_tensor(tmp_path: Path) -> None:
    run = build_run(tiny_config(None))
    tracer = Tracer(run, str(tmp_path), every=4)
    try:
        layer = ff_layers(run.model)[0]
        untouchable = torch.zeros(3, 2).as_subclass(_Untouchable)
        with pytest.raises(AssertionError, match="touched"):
            untouchable.sum()
        for step in (1, 2, 3, 5):
            run.step = step
            tracer.fflib_layer_activations(run, 0, layer, untouchable, untouchable)
            tracer.fflib_layer_goodness(run, 0, untouchable, untouchable, untouchable)
            tracer.fflib_batch_end(run, 0, step, untouchable)
        assert tracer._layers == {}
        run.step = 4
        h = torch.rand(3, 32)
        tracer.fflib_layer_activations(run, 0, layer, h, h)
        g = torch.rand(3)
        tracer.fflib_layer_goodness(run, 0, g, g, torch.tensor(1.0))
        assert list(tracer._layers) == [0]
        tracer.fflib_batch_end(run, 0, 4, torch.tensor(2.0))
        assert tracer._layers == {}
    finally:
        tracer.close()
    assert scalars(events(tmp_path), "layer0/separation") == {4: 0.0}


def test_default_interval_and_evaluations_follow_traced_epochs(tmp_path: Path) -> None:
    run, _ = train_tiny(tiny_config(tmp_path, layers=[12], epochs=5, trace_every=None))
    per_epoch = num_batches(len(run.data.train), run.config.batch_size)
    every = default_trace_every(per_epoch)
    assert every == 2  # 11 batches per epoch: several points per epoch, not one in 50
    steps = [s for s in range(5 * per_epoch) if s % every == 0]
    recorded = events(tmp_path)
    assert sorted(scalars(recorded, "batch/loss")) == steps
    assert sorted(scalars(recorded, "epoch/train_loss")) == [per_epoch * e for e in range(1, 6)]
    evaluated = sorted({per_epoch * (s // per_epoch + 1) for s in steps} | {5 * per_epoch})
    assert sorted(scalars(recorded, "epoch/layer0_acc")) == evaluated


def test_ffrnn_traces_goodness_per_frame(tmp_path: Path) -> None:
    recorder = Recorder(5)
    config = tiny_config(
        tmp_path,
        model="ffrnn",
        layers=[16, 12],
        epochs=1,
        trace_every=5,
        model_options={"frames": 3, "test_frames": "1:3"},
    )
    train_tiny(config, recorder)
    recorded = events(tmp_path)
    tags = set(recorded.Tags()["scalars"])
    for layer in (0, 1):
        for frame in (1, 2, 3):
            for name in ("goodness_pos_mean", "goodness_neg_mean", "separation", "loss"):
                assert f"layer{layer}_frames/frame{frame:02d}/{name}" in tags
    frames = [item for item in recorder.steps if item.step == 0 and item.layer == 1]
    assert len(frames) == 3
    for number, item in enumerate(frames, 1):
        logged = scalars(recorded, f"layer1_frames/frame{number:02d}/separation")[0]
        assert close(logged, float(item.g_pos.mean() - item.g_neg.mean()), 1e-4)
        assert close(scalars(recorded, f"layer1_frames/frame{number:02d}/loss")[0], item.loss)
    # the layer-level tags describe the last frame
    assert close(scalars(recorded, "layer1/goodness_pos_mean")[0], float(frames[-1].g_pos.mean()))
    assert {"layer0/fw", "layer0/bw", "layer0/bias"} <= set(recorded.Tags()["histograms"])


def test_ffc_traces_the_classifier(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, model="ffc", layers=[16, 12], epochs=2, trace_every=4)
    run, _ = train_tiny(config)
    recorded = events(tmp_path)
    per_epoch = num_batches(len(run.data.train), run.config.batch_size)
    losses = scalars(recorded, "classifier/val_loss")
    accuracies = scalars(recorded, "classifier/val_acc")
    assert sorted(losses) == sorted(accuracies) == [per_epoch, 2 * per_epoch]
    assert run.data.val is not None
    with torch.no_grad():
        logits = run.model.logits(run.data.val.x)  # type: ignore[operator]
    expected_loss = float(F.cross_entropy(logits, run.data.val.y))
    assert losses[2 * per_epoch] == pytest.approx(expected_loss, rel=1e-4)
    expected_acc = float((logits.argmax(dim=1) == run.data.val.y).float().mean())
    assert accuracies[2 * per_epoch] == pytest.approx(expected_acc)
    histograms = set(recorded.Tags()["histograms"])
    assert {"model/classifier.weight", "model/classifier.bias", "layer1/weight"} <= histograms


class _Boom:
    @hookimpl
    def fflib_epoch_end(self, run: TrainingRun, epoch: int, metrics: dict[str, float]) -> None:
        raise RuntimeError("boom")


def test_a_failed_run_leaves_a_readable_log_and_no_tracer(tmp_path: Path) -> None:
    plugins = manager()
    plugins.register(_Boom(), name="boom")
    run = build_run(tiny_config(tmp_path, trace_every=2))
    with pytest.raises(RuntimeError, match="boom"):
        train(run)
    stale = plugins.get_plugin(TRACER_NAME)
    assert isinstance(stale, Tracer) and not stale.events.closed
    plugins.unregister("boom")
    train(build_run(tiny_config(None, epochs=1)))  # the next run cleans up
    assert plugins.get_plugin(TRACER_NAME) is None and stale.events.closed
    # the tracer's epoch-end hook ran (and flushed) before the failing one
    per_epoch = num_batches(len(run.data.train), run.config.batch_size)
    assert sorted(scalars(events(tmp_path), "epoch/train_loss")) == [per_epoch]


def test_bad_log_directory_is_a_one_line_error(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a directory")
    args = ["train", "--layers", "8", "--epochs", "1", "--device", "cpu"]
    args += ["--out", str(tmp_path / "m.pt")]
    result = CliRunner().invoke(cli, [*args, "--tensorboard", str(target / "logs")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: cannot write TensorBoard logs to {target / 'logs'}: Not a directory"
    )
    with pytest.raises(TracingError, match="not a directory"):
        train_tiny(tiny_config(target))


def test_resumed_run_continues_the_curves(tmp_path: Path) -> None:
    logdir, out = tmp_path / "tb", tmp_path / "m.pt"
    base = ["train", "--layers", "8", "--device", "cpu", "--out", str(out)]
    first = CliRunner().invoke(cli, [*base, "--epochs", "1", "--logdir", str(logdir), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["config"]["tensorboard"] == str(logdir)  # nothing else
    again = CliRunner().invoke(cli, ["train", "--resume", str(out), "--epochs", "2"])
    assert again.exit_code == 0, again.output
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2
    assert sorted(scalars(events(logdir), "epoch/train_loss")) == [11, 22]
