"""Negative samplers: random wrong label, all wrong labels (inverse), hardest wrong label,
wrong labels from the read-out's neutral-label pass."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import ffcore
from ffcore.errors import FFLibError
from ffcore.interfaces import Batch, FFModel, NegativeSampler, inputs_of
from ffplugins.ffc import FFC
from ffplugins.ffnet import FFNet


class _Labels(FFModel):
    """A model of ``num_classes`` labels that nothing trains: what samplers read."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def train_batch(self, batch: Batch, negatives: NegativeSampler) -> Tensor:
        raise NotImplementedError


class _TableScorer(_Labels):
    """A LabelScorer whose goodness per label is the input itself (B, num_classes)."""

    def goodness_per_label(self, x: Tensor | Batch) -> Tensor:
        return inputs_of(x)


class _TableClassifier(_Labels):
    """A Classifier whose logits are the input itself (B, num_classes)."""

    def logits(self, x: Tensor | Batch) -> Tensor:
        return inputs_of(x)


def test_registered_names() -> None:
    assert {"random", "inverse", "hard", "neutral"} <= set(ffcore.list_negatives())
    for name in ("random", "inverse", "hard", "highest-incorrect", "neutral", "neutral-pass"):
        assert isinstance(ffcore.create_negatives(name), NegativeSampler)


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_random_never_returns_the_true_label(num_classes: int) -> None:
    torch.manual_seed(0)
    sampler = ffcore.create_negatives("random")
    y = torch.arange(4000) % num_classes
    x = torch.randn(4000, 3)
    batch = sampler(Batch(x, y), _Labels(num_classes))
    assert batch.y.shape == y.shape
    assert batch.y.dtype == torch.long
    assert (batch.y != y).all()
    assert ((batch.y >= 0) & (batch.y < num_classes)).all()
    assert torch.equal(batch.x, x)


def test_random_with_two_classes_is_the_other_label() -> None:
    sampler = ffcore.create_negatives("random")
    y = torch.tensor([0, 1, 1, 0, 1])
    assert sampler(Batch(torch.zeros(5, 2), y), _Labels(2)).y.tolist() == [1, 0, 0, 1, 0]


def test_random_is_roughly_uniform_over_wrong_labels() -> None:
    torch.manual_seed(0)
    num_classes, draws = 5, 40_000
    sampler = ffcore.create_negatives("random")
    for true_label in (0, 3):
        y = torch.full((draws,), true_label, dtype=torch.long)
        counts = torch.bincount(
            sampler(Batch(torch.zeros(draws, 1), y), _Labels(num_classes)).y, minlength=num_classes
        )
        assert counts[true_label] == 0
        expected = draws / (num_classes - 1)  # 10,000; std ≈ 87
        for label in range(num_classes):
            if label != true_label:
                assert abs(counts[label].item() - expected) < 0.05 * expected


@pytest.mark.parametrize("num_classes", [2, 3, 6])
def test_inverse_returns_every_wrong_label_sample_major(num_classes: int) -> None:
    sampler = ffcore.create_negatives("inverse")
    y = torch.tensor([0, num_classes - 1, 1 % num_classes])
    x = torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2)
    batch = sampler(Batch(x, y), _Labels(num_classes))
    per = num_classes - 1
    assert batch.y.shape == (3 * per,)
    assert batch.x.shape == (3 * per, 2)
    for i in range(3):
        rows = slice(i * per, (i + 1) * per)
        wrong = sorted(batch.y[rows].tolist())
        assert wrong == [c for c in range(num_classes) if c != int(y[i])]
        for row in range(i * per, (i + 1) * per):
            assert torch.equal(batch.x[row], x[i])
    assert batch.same_inputs  # the batch's own images: a network may share its work on them


def test_hard_picks_highest_scoring_wrong_label() -> None:
    sampler = ffcore.create_negatives("hard")
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.2],  # true 0; best wrong 1
            [0.1, 0.9, 0.5, 0.2],  # true 1 is the best: next best is 2
            [3.0, -1.0, 2.0, 2.5],  # true 0 is the best: next best is 3
            [-5.0, -4.0, -3.0, -6.0],  # true 2 is the best: next best is 1
        ]
    )
    y = torch.tensor([0, 1, 0, 2])
    batch = sampler(Batch(scores, y), _TableScorer(4))
    assert batch.y.tolist() == [1, 2, 3, 1]
    assert torch.equal(batch.x, scores)


def test_hard_never_returns_the_true_label() -> None:
    torch.manual_seed(0)
    sampler = ffcore.create_negatives("hard")
    scores = torch.randn(500, 7)
    y = scores.argmax(dim=1)  # the true label always scores highest
    batch = sampler(Batch(scores, y), _TableScorer(7))
    assert (batch.y != y).all()
    expected = scores.scatter(1, y.unsqueeze(1), float("-inf")).argmax(dim=1)
    assert torch.equal(batch.y, expected)


def test_hard_with_temperature_samples_wrong_labels_only() -> None:
    torch.manual_seed(0)
    sampler = ffcore.create_negatives("hard", temperature=1.0)
    draws = 6000
    # True label 0 scores far highest; wrong labels 1..3 score 2, 1, 0.
    scores = torch.tensor([10.0, 2.0, 1.0, 0.0]).repeat(draws, 1)
    y = torch.zeros(draws, dtype=torch.long)
    picked = sampler(Batch(scores, y), _TableScorer(4)).y
    assert (picked != 0).all()
    counts = torch.bincount(picked, minlength=4).float() / draws
    # softmax over the wrong labels' scores (2, 1, 0)
    weights = torch.tensor([2.0, 1.0, 0.0]).exp()
    expected = weights / weights.sum()
    torch.testing.assert_close(counts[1:], expected, atol=0.03, rtol=0.0)


def test_hard_with_high_temperature_covers_every_wrong_label() -> None:
    torch.manual_seed(0)
    sampler = ffcore.create_negatives("hard", temperature=100.0)
    scores = torch.randn(3000, 5)
    y = torch.randint(0, 5, (3000,))
    picked = sampler(Batch(scores, y), _TableScorer(5)).y
    assert (picked != y).all()
    assert set(picked.tolist()) == {0, 1, 2, 3, 4}


def test_hard_needs_a_label_scorer() -> None:
    sampler = ffcore.create_negatives("hard")
    with pytest.raises(FFLibError, match="hard"):
        sampler(Batch(torch.zeros(2, 3), torch.tensor([0, 1])), _Labels(3))


def test_hard_works_with_an_ffnet() -> None:
    torch.manual_seed(0)
    model = ffcore.create_model("ffnet", input_shape=(6,), num_classes=4, layers=[16])
    assert isinstance(model, FFNet)
    x = torch.randn(10, 6)
    y = torch.arange(10) % 4
    batch = ffcore.create_negatives("hard")(Batch(x, y), model)
    expected = model.goodness_per_label(x).scatter(1, y.unsqueeze(1), float("-inf")).argmax(1)
    assert torch.equal(batch.y, expected)
    assert (batch.y != y).all()
    loss = model.train_batch(Batch(x, y), ffcore.create_negatives("hard"))
    assert torch.isfinite(loss)


def test_neutral_draws_wrong_labels_in_proportion_to_the_read_out() -> None:
    torch.manual_seed(0)
    sampler = ffcore.create_negatives("neutral")  # temperature 1 by default, as Hinton's
    draws = 6000
    logits = torch.tensor([10.0, 2.0, 1.0, 0.0]).repeat(draws, 1)
    y = torch.zeros(draws, dtype=torch.long)
    batch = sampler(Batch(logits, y), _TableClassifier(4))
    assert (batch.y != 0).all()
    assert torch.equal(batch.x, logits)
    counts = torch.bincount(batch.y, minlength=4).float() / draws
    weights = torch.tensor([2.0, 1.0, 0.0]).exp()
    torch.testing.assert_close(counts[1:], weights / weights.sum(), atol=0.03, rtol=0.0)


def test_neutral_with_zero_temperature_takes_the_most_probable_wrong_label() -> None:
    sampler = ffcore.create_negatives("neutral", temperature=0.0)
    logits = torch.tensor([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    batch = sampler(Batch(logits, torch.tensor([1, 2])), _TableClassifier(3))
    assert batch.y.tolist() == [2, 0]


def test_neutral_rejects_a_negative_temperature() -> None:
    with pytest.raises(FFLibError, match=r"temperature.*-1"):
        ffcore.create_negatives("neutral", temperature=-1.0)


def test_neutral_needs_a_classifier_read_out() -> None:
    torch.manual_seed(0)
    model = ffcore.create_model("ffnet", input_shape=(6,), num_classes=4, layers=[16])
    sampler = ffcore.create_negatives("neutral")
    with pytest.raises(FFLibError, match=r"neutral.*--model ffc"):
        sampler(Batch(torch.zeros(2, 6), torch.tensor([0, 1])), model)


def test_neutral_uses_the_ffc_classifier_on_the_neutral_pass() -> None:
    torch.manual_seed(0)
    model = ffcore.create_model("ffc", input_shape=(6,), num_classes=4, layers=[16, 8])
    assert isinstance(model, FFC)
    x = torch.randn(64, 6)
    y = torch.arange(64) % 4
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0]))  # always predicts 3
    sampler = ffcore.create_negatives("neutral")
    batch = sampler(Batch(x, y), model)
    assert (batch.y[y != 3] == 3).all()  # the read-out's confident wrong guess
    assert (batch.y != y).all()
    loss = model.train_batch(Batch(x, y), sampler)
    assert torch.isfinite(loss)
