"""The ``ff`` command line, through click's runner and once as a real subprocess."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ffcore
from ffcore.cli.main import cli
from ffcore.cli.train import parse_component_option
from ffcore.errors import InvalidValueError
from ffcore.plugin_manager import FFPluginManager
from tests.core.fake_dist import install_fake_distribution

TINY = ["--preset", "plain", "--layers", "64", "--epochs", "2", "--device", "cpu"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_and_version() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list-plugins", "train", "eval"):
        assert command in result.output
    version = invoke("--version")
    assert version.exit_code == 0 and ffcore.__version__ in version.output


def test_list_plugins_text_and_json() -> None:
    text = invoke("list-plugins")
    assert text.exit_code == 0
    assert "ffnet (fflib " in text.output and "built-in" in text.output
    assert "model      ffnet" in text.output
    data = json.loads(invoke("list-plugins", "--json").output)
    by_name = {p["name"]: p for p in data}
    assert by_name["negatives"]["components"] == {
        "negatives": ["hard", "inverse", "neutral", "random"]
    }
    assert by_name["ffdense"]["distribution"] == "fflib"


def test_disable_plugin_option_drops_it() -> None:
    data = json.loads(
        invoke("--disable-plugin", "tryall", "-d", "presets", "list-plugins", "--json").output
    )
    names = {p["name"] for p in data if not p["disabled"]}
    assert "tryall" not in names and "presets" not in names and "ffnet" in names
    # the next invocation without the option sees every plugin again
    listed = json.loads(invoke("list-plugins", "--json").output)
    again = {p["name"] for p in listed if not p["disabled"]}
    assert "tryall" in again


def test_broken_plugin_is_listed_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_distribution(
        tmp_path,
        monkeypatch,
        name="fflib-broken",
        version="0.1",
        modules={"ff_broken_mod": "import does_not_exist_anywhere\n"},
        entry_points={"broken": "ff_broken_mod"},
    )
    result = invoke("list-plugins")
    assert result.exit_code == 0
    assert "broken (fflib-broken 0.1)" in result.output
    assert "ERROR: ModuleNotFoundError" in result.output
    assert "ffnet" in result.output


def test_train_json_summary_and_eval(tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    result = invoke("train", *TINY, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["model"] == "ffnet" and summary["dataset"] == "digits"
    assert len(summary["epochs"]) == 2
    assert all(0.0 <= e["val_acc"] <= 1.0 for e in summary["epochs"])
    assert summary["checkpoint"] == str(out) and out.is_file()
    assert summary["parameters"] == (64 + 10) * 64 + 64
    evaluated = json.loads(invoke("eval", str(out), "--json").output)
    assert evaluated["test_acc"] == pytest.approx(summary["test_acc"])
    assert evaluated["epoch"] == 2


def test_bf16_precision_is_saved_and_eval_uses_it_unless_told(tmp_path: Path) -> None:
    out = tmp_path / "mixed.pt"
    result = invoke("train", *TINY, "--precision", "bf16", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["config"]["precision"] == "bf16"
    evaluated = json.loads(invoke("eval", str(out), "--json").output)
    assert evaluated["precision"] == "bf16"
    assert evaluated["test_acc"] == pytest.approx(summary["test_acc"])
    assert json.loads(invoke("eval", str(out), "--precision", "fp32", "--json").output)[
        "precision"
    ] == ("fp32")
    assert "(bf16)" in invoke("eval", str(out)).output


def test_train_human_output_and_config_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('layers = [32]\nepochs = 1\nnegatives = "inverse"\n', encoding="utf-8")
    out = tmp_path / "c.pt"
    result = invoke("train", "--config", str(config), "--epochs", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "negatives inverse" in result.output
    assert "epoch 1/2" in result.output and "epoch 2/2" in result.output
    assert "test accuracy:" in result.output and f"checkpoint: {out}" in result.output


def test_component_options_reach_the_model(tmp_path: Path) -> None:
    out = tmp_path / "r.pt"
    result = invoke(
        "train",
        "--layers",
        "16,16",
        "--epochs",
        "1",
        "-O",
        "model.layer_range='1:'",
        "--out",
        str(out),
        "--json",
    )
    assert result.exit_code == 0, result.output
    # merged key by key into the digits recipe's model options
    options = json.loads(result.output)["config"]["model_options"]
    assert options == {**ffcore.get_preset("digits")["model_options"], "layer_range": "1:"}


def test_parse_component_option() -> None:
    assert parse_component_option("model.layer_range=[1, 2]") == (
        "model_options",
        "layer_range",
        [1, 2],
    )
    assert parse_component_option("dataset.root=/data") == ("dataset_options", "root", "/data")
    with pytest.raises(InvalidValueError, match=r"KIND\.NAME=VALUE"):
        parse_component_option("layer_range=1")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "ffnett"], "unknown model 'ffnett'; did you mean 'ffnet'"),
        (["--epochs", "-1"], "invalid epochs: -1"),
        (["--use", "1.5"], "invalid use: 1.5"),
        (["--goodness", "nope"], "unknown goodness 'nope'"),
        (
            ["--dataset", "mnist", "--data-root", "/nonexistent-dir", "--no-download"],
            "no data in /nonexistent-dir/MNIST/raw",
        ),
        (["--threshold", "3", "-O", "model.colour=1"], "'colour'"),
        (["--precision", "fp16"], "'fp16' is not one of 'fp32', 'bf16'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_unknown_config_key_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("epochs = 1\ncolour = 'red'\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "line 2: unknown key 'colour'" in result.output


def test_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(cli, ["--debug", "train", "--epochs", "-1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidValueError)


def ff_executable() -> str:
    """The installed ``ff`` console script (next to this Python, as pip puts it)."""
    beside = Path(sys.executable).parent / "ff"
    found = str(beside) if beside.is_file() else shutil.which("ff")
    assert found, "the ff console script is not installed: pip install -e ."
    return found


def test_real_ff_subprocess() -> None:
    env = {**os.environ, "FFLIB_DISABLE_PLUGINS": "presets"}
    listing = subprocess.run(
        [ff_executable(), "list-plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    names = {p["name"] for p in json.loads(listing.stdout) if not p["disabled"]}
    assert "presets" not in names and "ffnet" in names
    bad = subprocess.run(
        [ff_executable(), "train", "--dataset", "imagenet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "Error: unknown dataset 'imagenet' (available dataset names: "
        "cifar10, digits, fashion-mnist, mnist, xor)"
    ]


def test_plugins_can_add_subcommands(manager: FFPluginManager) -> None:
    import click

    class Greeter:
        @ffcore.hookimpl
        def fflib_register_commands(self, cli: click.Group) -> None:
            @cli.command("hello")
            @click.argument("name")
            def hello(name: str) -> None:
                """Say hello."""
                click.echo(f"hello {name}")

    manager.register(Greeter(), name="greeter")
    assert "hello" in invoke("--help").output
    assert invoke("hello", "world").output == "hello world\n"
    without = CliRunner().invoke(cli, ["--disable-plugin", "greeter", "hello", "x"])
    assert without.exit_code == 2 and "No such command 'hello'" in without.output


class Left(Exception):
    """What the patched ``os._exit`` raises, with the status a rank would have ended with."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--version"], 0),
        (["eval", "/nonexistent/run.pt"], 2),
        (["--debug", "eval", "/nonexistent/run.pt"], 1),
    ],
)
def test_a_rank_leaves_with_its_status_after_its_exit_handlers(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    status: int,
) -> None:
    from ffcore.cli import main as cli_main

    def leave(code: int) -> None:
        raise Left(code)

    exit_handlers: list[str] = []
    monkeypatch.setattr(os, "_exit", leave)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: exit_handlers.append("ran"))
    monkeypatch.setattr(sys, "argv", ["ff", *argv])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(Left) as left:
        cli_main.main()
    assert left.value.status == status
    assert exit_handlers == ["ran"]
    printed = capsys.readouterr()
    if status == 0:
        assert ffcore.__version__ in printed.out
    elif status == 2:
        assert printed.err.startswith("Error: rank 1: checkpoint /nonexistent/run.pt does not")
    else:
        assert "Traceback" in printed.err and "CheckpointError" in printed.err


def test_one_process_exits_as_python_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from ffcore.cli import main as cli_main

    monkeypatch.setattr(os, "_exit", lambda code: pytest.fail("os._exit called"))
    monkeypatch.setattr(sys, "argv", ["ff", "train", "--dataset", "imagenet"])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    assert exited.value.code == 2


@pytest.mark.parametrize(("code", "status"), [(None, 0), (3, 3), ("bye", 1)])
def test_exit_status_is_what_sys_exit_would_end_with(code: object, status: int) -> None:
    from ffcore.cli.main import exit_status

    assert exit_status(code) == status
