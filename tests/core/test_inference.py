"""``ffcore.load``: a trained model that classifies raw data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy
import pytest
import torch

import ffcore
from ffcore.checkpoint import load_checkpoint
from ffcore.errors import CheckpointError, InvalidValueError
from ffcore.inference import PreprocessingWarning, TrainedModel, as_batch
from ffcore.registry import create_probe, load_dataset
from ffcore.training import evaluate
from tests.core.usage_helpers import digits_raw_test, train_tiny

LEGACY = Path(__file__).resolve().parent.parent / "data" / "legacy"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from ffcore import plugin_manager

    plugin_manager.reset_plugins()
    folder = tmp_path_factory.mktemp("models")
    found = {
        "ffnet": train_tiny(folder / "ffnet.pt"),
        "ffc": train_tiny(folder / "ffc.pt", model="ffc", epochs=2),
    }
    plugin_manager.reset_plugins()
    return found


@pytest.mark.parametrize("name", ["ffnet", "ffc"])
def test_predict_on_raw_digits_equals_evaluate(name: str, checkpoints: dict[str, Path]) -> None:
    model = ffcore.load(checkpoints[name])
    raw, labels = digits_raw_test()
    predicted = model.predict(raw)  # uint8, 0..16, no channel dimension
    loaded = load_checkpoint(checkpoints[name])
    probe = create_probe(model.probe_name)
    accuracy = evaluate(loaded.model, probe, load_dataset("digits").test)
    assert int((predicted == labels).sum()) / len(labels) == accuracy
    data = load_dataset("digits")
    assert torch.equal(predicted, probe.predict(loaded.model.eval(), data.test.x))


def test_the_loaded_object(checkpoints: dict[str, Path]) -> None:
    model = ffcore.load(checkpoints["ffc"])
    assert isinstance(model, TrainedModel)
    assert model.classes == tuple(str(d) for d in range(10))
    assert model.score_kind == "logits" and model.probe_name == "classifier"
    assert model.to("cpu") is model and model.device == torch.device("cpu")
    raw, _ = digits_raw_test()
    scores = model.scores(raw[:20])
    assert scores.shape == (20, 10) and scores.dtype == torch.float32
    assert torch.equal(model(raw[:20]), scores)  # calling it gives the scores
    proba = model.predict_proba(raw[:20])
    assert torch.allclose(proba.sum(dim=1), torch.ones(20))
    assert torch.allclose(proba, torch.softmax(scores, dim=1))
    assert torch.equal(model.predict(raw[:20]), scores.argmax(dim=1))
    sharper = model.predict_proba(raw[:20], temperature=0.1)
    assert float(sharper.max(dim=1).values.mean()) > float(proba.max(dim=1).values.mean())
    with pytest.raises(InvalidValueError, match="temperature"):
        model.predict_proba(raw[:2], temperature=0)


def test_tryall_scores_are_goodness_per_label(checkpoints: dict[str, Path]) -> None:
    model = ffcore.load(checkpoints["ffnet"])
    assert model.score_kind == "goodness"
    raw, _ = digits_raw_test()
    inputs = model.prepare(raw[:5])
    expected = model.model.goodness_per_label(inputs)  # type: ignore[operator]
    assert torch.equal(model.scores(raw[:5]), expected)


def test_every_input_form_gives_the_same_predictions(checkpoints: dict[str, Path]) -> None:
    model = ffcore.load(checkpoints["ffnet"])
    raw, _ = digits_raw_test()
    expected = model.predict(raw[:30])
    forms: list[Any] = [
        raw[:30].unsqueeze(1),  # (N, 1, H, W)
        raw[:30].unsqueeze(-1),  # channels last
        raw[:30].float() / 16.0,  # floats on the [0, 1] scale
        raw[:30].numpy(),  # numpy
    ]
    for form in forms:
        assert torch.equal(model.predict(form), expected)
    assert torch.equal(model.predict(raw[0]), expected[:1])  # one image: a batch of one
    assert model.predict(raw[:0]).shape == (0,)
    with pytest.raises(InvalidValueError, match=r"input shape: \(4, 7, 7\)"):
        model.predict(torch.zeros(4, 7, 7))


def test_large_inputs_are_processed_in_chunks(
    checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ffcore.load(checkpoints["ffnet"], batch_size=256)
    raw, _ = digits_raw_test()
    many = raw.repeat(12, 1, 1)  # 4320 images
    seen: list[int] = []
    real = model.probe.scores

    def spy(net: Any, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return real(net, x)

    monkeypatch.setattr(model.probe, "scores", spy)
    scores = model.scores(many)
    assert max(seen) == 256 and sum(seen) == len(many)
    assert torch.allclose(scores[:360], scores[360:720], rtol=1e-5)


def test_floats_on_the_wrong_scale_warn(checkpoints: dict[str, Path]) -> None:
    model = ffcore.load(checkpoints["ffnet"])
    raw, _ = digits_raw_test()
    with pytest.warns(UserWarning, match=r"\[0, 1\] scale"):
        model.predict(raw[:3].float() * 16)


def test_a_checkpoint_without_preprocessing_says_so() -> None:
    with pytest.warns(PreprocessingWarning, match="records no input preprocessing"):
        model = ffcore.load(LEGACY / "ffnet-digits.pt")
    data = load_dataset("digits")
    loaded = load_checkpoint(LEGACY / "ffnet-digits.pt")
    expected = create_probe("tryall").predict(loaded.model.eval(), data.test.x)
    assert torch.equal(model.predict(data.test.x), expected)  # model-ready floats work
    raw, _ = digits_raw_test()
    with pytest.raises(CheckpointError, match="raw integer inputs cannot be scaled"):
        model.predict(raw)
    given = ffcore.load(LEGACY / "ffnet-digits.pt", preprocessing=data.preprocessing)
    assert torch.equal(given.predict(raw), expected)


def test_load_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        ffcore.load(bogus)
    numpy.save(tmp_path / "a.npy", numpy.zeros(3))
    with pytest.raises(CheckpointError):
        ffcore.load(tmp_path / "a.npy")


def test_as_batch_names_the_accepted_shapes() -> None:
    with pytest.raises(InvalidValueError, match=r"\(N, 3, 4, 4\) or channels last"):
        as_batch(torch.zeros(2, 4, 4), (3, 4, 4))
    assert as_batch(torch.zeros(2, 4, 4, 3), (3, 4, 4)).shape == (2, 3, 4, 4)
    assert as_batch(torch.zeros(5), (5,)).shape == (1, 5)
