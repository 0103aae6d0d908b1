"""TensorBoard hygiene: version folders, the goodness layout, the default interval, charts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from tensorboard.plugins.custom_scalar import layout_pb2  # type: ignore[import-untyped]
from tensorboard.util import tensor_util  # type: ignore[import-untyped]

from ffcore.cli.main import cli
from ffcore.runs import resume_run, save_run
from ffcore.training import train
from ffdebug import default_trace_every
from ffdebug.events import EventWriter, goodness_layout
from ffdebug.logdirs import fresh_logdir, holds_traces
from ffdebug.plots import heat_map_figure
from tests.debug.helpers import events, scalars, tiny_config, train_tiny


def test_a_fresh_folder_is_used_as_it_is(tmp_path: Path) -> None:
    assert fresh_logdir(tmp_path / "new") == tmp_path / "new"
    assert fresh_logdir(tmp_path) == tmp_path  # exists, but holds no traces
    assert not holds_traces(tmp_path)


def test_a_reused_folder_gets_the_next_version(tmp_path: Path) -> None:
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    assert fresh_logdir(tmp_path) == tmp_path / "version_1"
    (tmp_path / "version_1").mkdir()
    (tmp_path / "version_4").mkdir()
    assert fresh_logdir(tmp_path) == tmp_path / "version_5"


def test_a_second_run_into_one_folder_writes_a_version_folder(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    train_tiny(tiny_config(logdir, epochs=1))
    run, _ = train_tiny(tiny_config(logdir, epochs=1))
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    assert len(list((logdir / "version_1").glob("events.out.tfevents.*"))) == 1
    assert run.config.setting("tensorboard") == str(logdir / "version_1")


def test_ff_train_says_where_a_reused_folder_s_traces_go(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    args = ["train", "--preset", "plain", "--layers", "8", "-e", "1", "--tensorboard", str(logdir)]
    first = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a.pt")])
    assert first.exit_code == 0 and "already holds" not in first.output
    second = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "b.pt")])
    assert second.exit_code == 0, second.output
    assert f"{logdir} already holds a run's traces; this run writes to {logdir}/version_1" in (
        second.output
    )


def test_a_resumed_run_continues_in_its_own_version_folder(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    train_tiny(tiny_config(logdir, epochs=1))
    run, metrics = train_tiny(tiny_config(logdir, epochs=1))
    path = save_run(run, tmp_path / "v1.pt", metrics)
    resumed = resume_run(path, {"epochs": 2})
    train(resumed, progress=None)
    assert resumed.config.setting("tensorboard") == str(logdir / "version_1")
    assert not (logdir / "version_2").exists()
    steps = sorted(scalars(events(logdir / "version_1"), "epoch/train_loss"))
    assert len(steps) == 2  # both epochs' figures in the one folder


def test_the_custom_scalars_layout_overlays_goodness_and_threshold(tmp_path: Path) -> None:
    train_tiny(tiny_config(tmp_path, epochs=1))
    recorded = events(tmp_path)
    stored = recorded.Tensors("custom_scalars__config__")[0].tensor_proto
    layout = layout_pb2.Layout()
    layout.ParseFromString(tensor_util.make_ndarray(stored).item())
    charts = {chart.title: list(chart.multiline.tag) for c in layout.category for chart in c.chart}
    assert charts["layer1 goodness"] == [
        "^layer1/goodness_pos_mean$",
        "^layer1/goodness_neg_mean$",
        "^layer1/threshold$",
    ]
    assert charts["loss of every layer"] == ["^layer0/loss$", "^layer1/loss$"]
    thresholds = scalars(recorded, "layer1/threshold")
    assert thresholds and set(thresholds.values()) == {24.0}  # sum of squares: the width
    assert goodness_layout(1)["FF layers"]["layer0 goodness"][0] == "Multiline"


@pytest.mark.parametrize(("batches", "every"), [(11, 2), (4, 1), (100, 20), (422, 50)])
def test_the_default_interval_gives_several_points_per_epoch(batches: int, every: int) -> None:
    assert default_trace_every(batches) == every


def test_heat_map_charts_name_layers_and_classes_with_colour_bars() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, float("nan")]])
    figure = heat_map_figure(values, ["layer0", "layer1"], ["cat", "dog", "emu"], title="t")
    assert figure is not None
    strips = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    assert len(figure.axes) - len(strips) == 2  # one colour bar per layer
    assert [a.get_yticklabels()[0].get_text() for a in strips] == ["layer0", "layer1"]
    assert [t.get_text() for t in strips[-1].get_xticklabels()] == ["cat", "dog", "emu"]
    assert "2" in [t.get_text() for t in strips[0].texts]  # the values are written in
    with pytest.raises(ValueError, match="for 2x2"):
        heat_map_figure(values, ["a", "b"], ["x", "y"], title="t")


def test_without_matplotlib_heat_maps_are_plain_grids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert heat_map_figure(values, ["a", "b"], ["x", "y"], title="t") is None
    writer = EventWriter(tmp_path)
    writer.heat_map("grid", values, rows=["a", "b"], columns=["x", "y"], title="t")
    writer.close()
    image: Any = events(tmp_path).Images("grid")[0]
    assert (image.width, image.height) == (2 * 24, 2 * 24)
