"""TryAll probe: argmax of goodness over every label."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import ffcore
from ffcore.errors import FFLibError
from ffcore.interfaces import Probe
from ffcore.layers import images_per_block
from ffplugins.dense import FFDense
from ffplugins.ffnet import FFNet


class _TableScorer(nn.Module):
    """A LabelScorer whose goodness per label is the input itself (B, num_classes)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.calls = 0

    def goodness_per_label(self, x: Tensor) -> Tensor:
        self.calls += 1
        return x


def test_registered_with_alias() -> None:
    assert "tryall" in ffcore.list_probes()
    assert isinstance(ffcore.create_probe("tryall"), Probe)
    assert type(ffcore.create_probe("try-all")) is type(ffcore.create_probe("tryall"))


def test_predicts_argmax_of_stub_scores() -> None:
    probe = ffcore.create_probe("tryall")
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.3, 0.0],
            [5.0, -1.0, 4.0, 4.9],
            [-3.0, -2.0, -1.0, -4.0],
        ]
    )
    model = _TableScorer(num_classes=4)
    probe.check(model)
    prediction = probe.predict(model, scores)
    assert prediction.tolist() == [1, 0, 2]
    assert model.calls == 1


def test_predicts_the_label_an_ffnet_is_wired_to_prefer() -> None:
    features, classes, preferred = 6, 4, 3
    layer = FFDense(features + classes, 2, norm="none", activation="identity")
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.bias.zero_()
        # Unit 0 reads only the one-hot slot of the preferred label.
        layer.linear.weight[0, features + preferred] = 5.0
    model = FFNet([layer], input_features=features, num_classes=classes)
    x = torch.randn(9, features)
    per_label = model.goodness_per_label(x)
    expected = torch.zeros(9, classes)
    expected[:, preferred] = 25.0  # (5 * 1)²
    torch.testing.assert_close(per_label, expected)
    prediction = ffcore.create_probe("tryall").predict(model, x)
    assert prediction.tolist() == [preferred] * 9


def test_minimising_ffnet_prefers_the_lowest_raw_goodness() -> None:
    features, classes = 3, 3
    layer = FFDense(features + classes, 3, norm="none", activation="identity", maximise=False)
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.bias.zero_()
        layer.linear.weight[0, features + 0] = 2.0  # label 0: goodness 4
        layer.linear.weight[1, features + 1] = 1.0  # label 1: goodness 1
        layer.linear.weight[2, features + 2] = 3.0  # label 2: goodness 9
    model = FFNet([layer], input_features=features, num_classes=classes)
    prediction = ffcore.create_probe("tryall").predict(model, torch.randn(4, features))
    assert prediction.tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("model", [nn.Linear(3, 3), nn.Sequential()])
def test_check_rejects_models_without_goodness_per_label(model: nn.Module) -> None:
    probe = ffcore.create_probe("tryall")
    with pytest.raises(FFLibError, match="goodness_per_label"):
        probe.check(model)
    with pytest.raises(FFLibError):
        probe.predict(model, torch.zeros(2, 3))


def test_images_per_block_limits_rows_on_the_cpu_only() -> None:
    cpu = torch.empty(100, 3)
    assert images_per_block(cpu, 10, 512) == 51
    assert images_per_block(cpu, 10, 5) == 1  # at least one image
    elsewhere = torch.empty(100, 3, device="meta")
    assert images_per_block(elsewhere, 10, 512) == 100  # accelerators: every image at once
