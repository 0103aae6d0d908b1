"""The statistics ffdebug writes, on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

import ffcore
from ffdebug.events import heat_map, hparam_value, markdown_table
from ffdebug.stats import (
    HISTOGRAM_BINS,
    HISTOGRAM_SAMPLE,
    Packet,
    dead_fraction,
    histogram_from_parts,
    histogram_parts,
    other_parameters,
    pairs_ordered,
    parameter_tags,
)


def test_histogram_is_exact_for_small_tensors() -> None:
    values = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.9]])
    parts = histogram_parts(values, bins=3).tolist()
    histogram = histogram_from_parts(parts, values.numel())
    assert histogram is not None
    assert (histogram.min, histogram.num) == (0.0, 6)
    assert histogram.max == pytest.approx(5.9)
    assert histogram.sum == pytest.approx(15.9) and histogram.sum_squares == pytest.approx(
        float((values**2).sum())
    )
    assert histogram.bucket_counts == [2.0, 2.0, 2.0]
    assert histogram.bucket_limits == pytest.approx([5.9 / 3, 2 * 5.9 / 3, 5.9])


@pytest.mark.parametrize("size", [1000, 3 * HISTOGRAM_SAMPLE])
def test_sync_free_counts_agree_with_histc(size: int) -> None:
    values = torch.randn(size, generator=torch.Generator().manual_seed(size))
    histc = histogram_parts(values, sync_free=False)
    scatter = histogram_parts(values, sync_free=True)
    assert torch.equal(histc[:4], scatter[:4])
    counts = histc[4:]
    assert float(counts.sum()) == pytest.approx(size)  # sampled counts are scaled up
    assert float((counts - scatter[4:]).abs().sum()) <= 2 * size / min(size, HISTOGRAM_SAMPLE)


def test_constant_and_non_finite_histograms() -> None:
    constant = histogram_from_parts(histogram_parts(torch.zeros(7)).tolist(), 7)
    assert constant is not None
    assert constant.bucket_limits == [0.0] and constant.bucket_counts == [7.0]
    broken = torch.tensor([1.0, float("nan")])
    assert histogram_from_parts(histogram_parts(broken).tolist(), 2) is None


def test_packet_fetches_everything_in_order() -> None:
    packet = Packet()
    packet.scalar("a", torch.tensor(1.5))
    packet.scalar("b", 2.0)
    packet.scalars(["c", "d"], torch.tensor([3.0, 4.0]))
    packet.histogram("h", torch.arange(10.0))
    packet.histogram("empty", torch.zeros(0))
    assert len(packet) == 5
    fetched = packet.fetch()
    assert fetched.scalars == {"b": 2.0, "a": 1.5, "c": 3.0, "d": 4.0}
    assert list(fetched.histograms) == ["h"]
    assert fetched.histograms["h"].num == 10
    assert len(fetched.histograms["h"].bucket_counts) == HISTOGRAM_BINS
    with pytest.raises(ValueError, match="2 tags for 3 values"):
        packet.scalars(["x", "y"], torch.zeros(3))


def test_pairs_ordered_pairs_each_positive_with_its_own_negatives() -> None:
    pos = torch.tensor([3.0, 1.0])
    assert float(pairs_ordered(pos, torch.tensor([2.0, 2.0]))) == 0.5
    # two negatives per positive, sample-major: 3 > (0, 4)? one of two; 1 > (0, 0.5)? both
    assert float(pairs_ordered(pos, torch.tensor([0.0, 4.0, 0.0, 0.5]))) == 0.75
    # three negatives for two positives: every pair, ties count as wrong
    assert float(pairs_ordered(pos, torch.tensor([1.0, 2.0, 5.0]))) == pytest.approx(2 / 6)


def test_dead_fraction_counts_units_silent_on_both_kinds() -> None:
    h_pos = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    h_neg = torch.tensor([[0.0, 0.0, 3.0, 0.0]])
    assert float(dead_fraction(h_pos, h_neg)) == 0.5


def test_parameter_names_are_short() -> None:
    dense = ffcore.create_layer("ffdense", in_features=4, out_features=3)
    assert [name for name, _ in parameter_tags(dense)] == ["weight", "bias"]
    recurrent = ffcore.create_layer("ffrecurrent", fw_features=4, rc_features=3, bw_features=2)
    assert [name for name, _ in parameter_tags(recurrent)] == ["fw", "bw", "bias"]
    model = ffcore.create_model("ffc", (4,), 3, layers=[5])
    assert [name for name, _ in other_parameters(model)] == [
        "classifier.weight",
        "classifier.bias",
    ]


def test_heat_map_colours_each_row_on_its_own_scale() -> None:
    values = torch.tensor([[0.0, 10.0], [100.0, 50.0], [float("nan"), 1.0]])
    image = heat_map(values, cell=2)
    assert image.shape == (3, 6, 4)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert torch.allclose(image[:, 0, 0], image[:, 2, 2])  # each row's minimum
    assert torch.allclose(image[:, 0, 2], image[:, 2, 0])  # each row's maximum
    assert torch.allclose(image[:, 4, 0], torch.full((3,), 0.5))  # NaN is grey
    diverging = heat_map(torch.tensor([[-2.0, 0.0, 1.0]]), diverging=True, cell=1)
    assert torch.allclose(diverging[:, 0, 1], torch.full((3,), 0.969))  # zero is white
    assert float(diverging[2, 0, 0]) > float(diverging[0, 0, 0])  # negative: blue
    assert float(diverging[0, 0, 2]) > float(diverging[2, 0, 2])  # positive: red


def test_markdown_and_hparam_values() -> None:
    table = markdown_table(("k", "v"), [("a|b", 0.123456), ("n", None)])
    assert table.splitlines() == ["| k | v |", "|---|---|", "| a\\|b | 0.1235 |", "| n | None |"]
    assert [hparam_value(v) for v in (None, True, 3, 0.5, [1, 2])] == [
        "default",
        "true",
        3,
        0.5,
        "[1, 2]",
    ]
