"""Bad input everywhere a user can reach: clear errors, never silent NaN, never a traceback."""

from __future__ import annotations

import contextlib
import string
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

import ffcore
from ffcore.cli.main import cli
from ffcore.config import FIELDS, build_config, read_config_file
from ffcore.errors import ConfigError, DataError, DivergenceError, FFLibError, InvalidValueError
from ffcore.interfaces import Batch, DataSplits, GoodnessFunction, Split
from ffcore.plugin_manager import FFPluginManager
from ffcore.training import build_run, train
from ffplugins.dense import FFDense
from tests.core.checkpoint_surgery import invoke


def test_learning_rate_100x_too_high_is_a_clear_divergence_error() -> None:
    config = ffcore.config.TrainConfig(preset="plain", layers=[256], epochs=3, lr=1.0, device="cpu")
    with pytest.raises(DivergenceError) as info:
        train(build_run(config))
    message = str(info.value)
    assert "training diverged in epoch 1" in message
    assert "layer 'layers.0'" in message and "lower the learning rate" in message


def test_cli_reports_divergence_as_one_line(tmp_path: Path) -> None:
    options = ["--layers", "64", "--epochs", "2", "--lr", "1", "--out", str(tmp_path / "x")]
    result = invoke("train", "--preset", "plain", *options)
    assert result.exit_code == 2
    assert "Error: training diverged" in result.output and "Traceback" not in result.output


class NaNOnCall(GoodnessFunction):
    """Sum of squares, but NaN on the ``bad``-th call (a layer blowing up once)."""

    def __init__(self, bad: int) -> None:
        self.calls = 0
        self.bad = bad

    def __call__(self, h: Tensor) -> Tensor:
        self.calls += 1
        g = h.square().sum(dim=1)
        return g * float("nan") if self.calls == self.bad else g

    def default_threshold(self, num_features: int) -> float:
        return float(num_features)


def test_non_finite_loss_never_reaches_the_weights() -> None:
    layer = FFDense(4, 3, goodness=NaNOnCall(bad=1))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(DivergenceError, match="non-finite loss"):
        layer.train_step(torch.randn(5, 4), torch.randn(5, 4))
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_non_finite_policy_in_training(policy: str, manager: FFPluginManager) -> None:
    nan_goodness = NaNOnCall(bad=-1)

    class NaNPlugin:
        @ffcore.hookimpl
        def fflib_register_goodness(self, register: ffcore.hookspecs.Register) -> None:
            register("nan-once", lambda: nan_goodness)

    manager.register(NaNPlugin(), name="nan-plugin")
    config = ffcore.config.TrainConfig(
        layers=[16], epochs=2, goodness="nan-once", device="cpu", on_nonfinite=policy
    )
    run = build_run(config)
    nan_goodness.bad = 4  # the 4th batch's goodness is NaN
    if policy == "error":
        with pytest.raises(DivergenceError) as info:
            train(run)
        message = str(info.value)
        assert "epoch 1, batch 4" in message and "layer 'layers.0'" in message
        assert "--on-nonfinite skip" in message
    else:
        metrics = train(run)
        assert metrics["skipped_batches"] == 1
        assert run.step == 2 * -(-len(run.data.train) // 128)
        assert all(bool(torch.isfinite(p).all()) for p in run.model.parameters())


def test_nan_in_data_is_refused_naming_the_split() -> None:
    x = torch.randn(10, 3)
    x[4, 1] = float("nan")
    with pytest.raises(DataError, match="train inputs hold 1 NaN or infinite"):
        DataSplits(
            name="toy",
            train=Split(x, torch.zeros(10, dtype=torch.long)),
            val=None,
            test=Split(torch.randn(2, 3), torch.zeros(2, dtype=torch.long)),
            input_shape=(3,),
            num_classes=2,
        )


def test_labels_outside_the_classes() -> None:
    with pytest.raises(DataError, match=r"labels span 0\.\.5, expected 0\.\.2"):
        DataSplits(
            name="toy",
            train=Split(torch.randn(4, 3), torch.tensor([0, 1, 5, 2])),
            val=None,
            test=Split(torch.randn(2, 3), torch.zeros(2, dtype=torch.long)),
            input_shape=(3,),
            num_classes=3,
        )
    model = ffcore.create_model("ffnet", input_shape=(3,), num_classes=3, layers=[4])
    sampler = ffcore.create_negatives("random")
    with pytest.raises(InvalidValueError, match="labels"):
        model.train_batch(Batch(torch.randn(2, 3), torch.tensor([0, 7])), sampler)


def test_wrong_input_width_for_layer_and_model() -> None:
    layer = ffcore.create_layer("ffdense", in_features=5, out_features=2)
    with pytest.raises(InvalidValueError, match=r"\(batch, 5\)"):
        layer(torch.randn(3, 4))
    model = ffcore.create_model("ffnet", input_shape=(1, 2, 2), num_classes=3, layers=[4])
    with pytest.raises(InvalidValueError, match="4 features per sample"):
        model.goodness_per_label(torch.randn(2, 1, 3, 3))  # type: ignore[operator]


def test_empty_data_and_oversized_batches() -> None:
    with pytest.raises(DataError, match="train split is empty"):
        DataSplits(
            name="toy",
            train=Split(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)),
            val=None,
            test=Split(torch.randn(2, 3), torch.zeros(2, dtype=torch.long)),
            input_shape=(3,),
            num_classes=2,
        )
    with pytest.raises(InvalidValueError, match="batch_size: 5000"):
        build_run(ffcore.config.TrainConfig(batch_size=5000, layers=[4], device="cpu"))
    with pytest.raises(InvalidValueError, match="threshold"):
        ffcore.create_layer("ffdense", in_features=3, out_features=2, threshold=-1.0)


# --- property-based: random settings and documents give clean errors only --------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.ascii_letters + "-_:", max_size=8),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.dictionaries(st.sampled_from(["norm", "x"]), st.integers(), max_size=2),
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(alphabet=string.ascii_lowercase, max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_random_settings_build_or_fail_cleanly(settings_dict: dict[str, Any]) -> None:
    with contextlib.suppress(FFLibError):
        build_config(overrides=settings_dict)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=80))
def test_random_config_documents_read_or_fail_cleanly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.toml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(FFLibError):
        build_config(file=read_config_file(path))


NESTED = st.integers(min_value=1, max_value=3000).flatmap(
    lambda depth: st.sampled_from(
        [
            "layers = " + "[" * depth + "]" * depth,
            "model_options = " + "{a = " * depth + "1" + "}" * depth,
            "[" + ".".join(["t"] * depth) + "]",
        ]
    )
)
#: Config files as bytes: anything at all, valid text with a BOM or a stray byte in other
#: encodings, and arrays or tables nested up to thousands of levels.
CONFIG_BYTES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=80).map(lambda t: "\ufeff".encode() + t.encode("utf-8")),
    st.text(max_size=80).map(lambda t: t.encode("utf-16")),
    st.text(alphabet='abcé=[]{}\n "1', max_size=80).map(lambda t: t.encode("latin-1")),
    NESTED.map(str.encode),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(CONFIG_BYTES)
def test_random_config_bytes_read_or_fail_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.toml"
    path.write_bytes(data)
    try:
        build_config(file=read_config_file(path))
    except FFLibError as exc:
        assert "\n" not in str(exc).strip()  # one line, whatever the bytes


def test_config_files_in_bytes_that_are_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_bytes("\ufeff".encode() + b"layers = [8]\nepochs = 1\n")
    assert read_config_file(path) == {"layers": [8], "epochs": 1}  # a BOM is fine
    path.write_bytes(b"layers = [8]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"line 2: not UTF-8 text \(byte 0xe9 at offset 18\)"):
        read_config_file(path)
    path.write_bytes(b"layers = " + b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_config_file(path)
    path.write_bytes(b"model_options = " + b"{a = " * 40 + b"1" + b"}" * 40)
    with pytest.raises(ConfigError, match="nested more than 32 levels deep"):
        read_config_file(path)
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError):
        read_config_file(path)
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    with pytest.raises(ConfigError, match="at most 1,048,576 bytes"):
        read_config_file(path)


def test_the_cli_reads_a_config_with_a_bom_and_refuses_binary(tmp_path: Path) -> None:
    config = tmp_path / "bom.toml"
    config.write_bytes("\ufeff".encode() + b'preset = "plain"\nlayers = [8]\nepochs = 1\n')
    ok = CliRunner().invoke(
        cli, ["train", "--config", str(config), "--device", "cpu", "--out", str(tmp_path / "m")]
    )
    assert ok.exit_code == 0, ok.output
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    bad = CliRunner().invoke(cli, ["train", "--config", str(binary)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert [line for line in bad.output.splitlines() if line.startswith("Error:")] == [
        f"Error: {binary}, line 1: not UTF-8 text (byte 0xff at offset 1); a config file is "
        "TOML, saved as UTF-8"
    ]


OPTION_VALUES = {
    "--epochs": st.sampled_from(["0", "-1", "x", "1.5"]),
    "--batch-size": st.sampled_from(["0", "-3", "abc", "64"]),
    "--lr": st.sampled_from(["-1", "0", "nan", "inf", "0.01", "x"]),
    "--use": st.sampled_from(["0", "1.5", "-0.2", "0.5", "nan"]),
    "--val-split": st.sampled_from(["1", "-0.1", "0.2", "x"]),
    "--device": st.sampled_from(["cpu", "gpu", "cuda:99", "tpu", ""]),
    "--layers": st.sampled_from(["16", "0", "a,b", "-4", "16,"]),
    "--model": st.sampled_from(["ffnet", "ffc", "bp", "nope"]),
    "--goodness": st.sampled_from(["sum-squares", "nope"]),
    "--threshold": st.sampled_from(["-5", "nan", "3"]),
    "--negatives": st.sampled_from(["random", "hard", "nope"]),
    "--lr-schedule": st.sampled_from(["cosine", "step"]),
}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dictionaries(st.sampled_from(sorted(OPTION_VALUES)), st.just(""), max_size=4), st.data())
def test_random_cli_options_never_traceback(
    tmp_path: Path, chosen: dict[str, str], data: st.DataObject
) -> None:
    args = ["train", "--epochs", "0", "--out", str(tmp_path / "h.pt"), "--json"]
    for option in chosen:
        args += [option, data.draw(OPTION_VALUES[option])]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 2), (args, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.strip().count("\n") <= 3  # a usage line at most, then the error
