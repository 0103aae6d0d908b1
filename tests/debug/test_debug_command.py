"""``ff debug CHECKPOINT``: histograms, heat maps and the embedding projector of a saved model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

import ffcore
from ffcore.checkpoint import load_checkpoint
from ffcore.cli.main import cli
from ffcore.interfaces import Batch
from ffcore.runs import save_run
from ffdebug.debug import ff_layers, per_class_mean, trace_checkpoint
from tests.debug.helpers import close, events, scalars, text, tiny_config, train_tiny

SAMPLES = 60


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def saved(tmp: Path, name: str, **settings: Any) -> Path:
    run, metrics = train_tiny(tiny_config(None, epochs=1, **settings))
    return save_run(run, tmp / f"{name}.pt", metrics)


@dataclass
class Debugged:
    checkpoint: Path
    logdir: Path
    output: str
    events: Any


@pytest.fixture(scope="module")
def debugged(tmp_path_factory: pytest.TempPathFactory) -> Debugged:
    tmp = tmp_path_factory.mktemp("debug")
    checkpoint = saved(tmp, "ffnet", layers=[24, 16])
    logdir = tmp / "tb"
    result = invoke("debug", str(checkpoint), "--logdir", str(logdir), "--samples", str(SAMPLES))
    assert result.exit_code == 0, result.output
    return Debugged(checkpoint, logdir, result.output, events(logdir))


def test_reports_what_it_wrote(debugged: Debugged) -> None:
    lines = debugged.output.strip().splitlines()
    assert lines[0].startswith(f"ffnet (epoch 1) on digits test ({SAMPLES} samples): 2 layers")
    assert "image goodness/per_class" in lines[0] and "2 embeddings" in lines[0]
    assert lines[1] == f"view with: tensorboard --logdir {debugged.logdir}"


def test_writes_the_per_layer_histograms_and_scalars(debugged: Debugged) -> None:
    tags = debugged.events.Tags()
    for layer in (0, 1):
        for name in ("activations_pos", "activations_neg", "goodness_pos", "weight", "bias"):
            assert f"layer{layer}/{name}" in tags["histograms"]
        for name in ("separation", "pairs_ordered", "loss", "lr", "hoyer", "dead_fraction"):
            assert list(scalars(debugged.events, f"layer{layer}/{name}")) == [0]
    assert {"debug/acc", "debug/layer0_acc", "debug/layer1_acc"} <= set(tags["scalars"])
    histogram = debugged.events.Histograms("layer1/activations_pos")[0].histogram_value
    assert histogram.num == SAMPLES * 16
    assert "| model | ffnet |" in text(debugged.events, "run/checkpoint")
    assert "| dataset | digits |" in text(debugged.events, "run/config")


def test_values_match_a_recomputation_on_the_same_sample(debugged: Debugged) -> None:
    model = load_checkpoint(debugged.checkpoint).model
    data = ffcore.load_dataset("digits")
    order = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(0))[:SAMPLES]
    x, y = data.test.x[order], data.test.y[order]
    torch.manual_seed(0)
    negatives = ffcore.create_negatives("random")(Batch(x, y), model)
    with torch.no_grad():
        acts_pos, acts_neg = model(x, y), model(negatives.x, negatives.y)
    layers = ff_layers(model)
    for index, layer in enumerate(layers):
        g_pos, g_neg = layer.goodness(acts_pos[index]), layer.goodness(acts_neg[index])
        separation = scalars(debugged.events, f"layer{index}/separation")[0]
        assert close(separation, float(g_pos.mean() - g_neg.mean()), 1e-4)
        assert close(
            scalars(debugged.events, f"layer{index}/loss")[0], float(layer.loss(g_pos, g_neg))
        )
    scores = torch.stack([layer.score(h) for layer, h in zip(layers, acts_pos, strict=True)])
    means = per_class_mean(scores, y, 10)
    table = text(debugged.events, "goodness/per_class").splitlines()
    assert table[0] == "|  | " + " | ".join(str(c) for c in range(10)) + " |"
    for index in (0, 1):
        cells = table[2 + index].strip("| ").split(" | ")
        assert cells[0] == f"layer{index}"
        for logged, expected in zip(cells[1:], means[index].tolist(), strict=True):
            assert logged == "nan" or close(float(logged), expected, 1e-3)
    with torch.no_grad():
        alone = model.layer_goodness_per_label(x).argmax(dim=2)  # type: ignore[operator]
    for index in (0, 1):
        accuracy = float((alone[index] == y).float().mean())
        assert scalars(debugged.events, f"debug/layer{index}_acc")[0] == pytest.approx(accuracy)


def test_writes_heat_maps_and_the_projector(debugged: Debugged) -> None:
    for tag in ("goodness/per_class", "goodness/margin_per_class"):
        image = debugged.events.Images(tag)[0]
        # a matplotlib chart (axes, names, colour bars), larger than the 24-pixel cell grid
        assert image.width > 10 * 24 and image.height > 2 * 24
    config = (debugged.logdir / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 2
    for layer, width in ((0, 24), (1, 16)):
        folder = debugged.logdir / "00000" / f"layer{layer}"
        assert f'tensor_path: "00000/layer{layer}/tensors.tsv"' in config
        rows = (folder / "tensors.tsv").read_text().splitlines()
        assert len(rows) == SAMPLES and all(len(row.split("\t")) == width for row in rows)
        labels = (folder / "metadata.tsv").read_text().splitlines()
        assert len(labels) == SAMPLES and set(labels) <= {str(c) for c in range(10)}
        assert (folder / "sprite.png").read_bytes().startswith(b"\x89PNG")


def test_other_models(tmp_path: Path) -> None:
    rnn = saved(
        tmp_path,
        "rnn",
        model="ffrnn",
        layers=[12],
        model_options={"frames": 2, "test_frames": "1:2"},
    )
    report = trace_checkpoint(rnn, tmp_path / "rnn", samples=20)
    assert (report.layers, report.embeddings, report.images) == (1, 1, ("goodness/per_class",))
    bp = saved(tmp_path, "bp", model="bp", layers=[12])
    report = trace_checkpoint(bp, tmp_path / "bp", split="val", samples=20)
    assert (report.layers, report.embeddings, report.images) == (0, 0, ())
    recorded = events(tmp_path / "bp")
    assert {"model/net.0.weight", "model/net.2.bias"} <= set(recorded.Tags()["histograms"])
    assert {"classifier/loss", "classifier/acc", "debug/acc"} <= set(recorded.Tags()["scalars"])


def test_user_errors_are_one_line(debugged: Debugged, tmp_path: Path) -> None:
    logdir = str(tmp_path / "tb")
    cases = {
        "does not exist": ["debug", str(tmp_path / "missing.pt"), "--logdir", logdir],
        "unknown dataset 'nope'": ["debug", str(debugged.checkpoint), "--logdir", logdir],
        "has inputs of shape (2,)": ["debug", str(debugged.checkpoint), "--logdir", logdir],
    }
    cases["unknown dataset 'nope'"] += ["--dataset", "nope"]
    cases["has inputs of shape (2,)"] += ["--dataset", "xor"]
    for message, args in cases.items():
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("Error: ") and message in last, last
    no_val = saved(tmp_path, "noval", layers=[8], val_split=0.0)
    result = invoke("debug", str(no_val), "--logdir", logdir, "--split", "val")
    assert result.exit_code == 2
    assert "has no val split" in result.output
    assert not list(tmp_path.glob("tb/events.*"))
