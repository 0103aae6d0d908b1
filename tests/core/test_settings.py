"""Settings are declared once: the core's as TrainConfig fields, a plugin's in a hook.

From one declaration come the value check, the config-file key, the ``ff train`` option
and whether ``--resume`` may change it; the core names no plugin's setting.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import ffcore
from ffcore.cli.main import cli
from ffcore.cli.setting_options import setting_option
from ffcore.config import (
    CORE_SETTINGS,
    TrainConfig,
    build_config,
    read_config_file,
    resumable_settings,
)
from ffcore.errors import ConfigError, InvalidValueError, PluginError
from ffcore.plugin_manager import FFPluginManager, configure_plugins
from ffcore.runs import resume_run, save_run
from ffcore.settings import Options, Setting, check_value, describe_type, fits
from ffcore.training import build_run, train

CORE = Path(ffcore.__file__).resolve().parent


class MarginLog:
    """A third-party plugin with settings of each kind, as the guide describes."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bool, str | None]] = []

    @ffcore.hookimpl
    def fflib_add_options(self, options: Options) -> None:
        options.add(
            "margin_every",
            int,
            default=1,
            help="Print margins every N epochs.",
            expected="a positive number of epochs",
            check=lambda n: n >= 1,
            resumable=True,
        )
        options.add("margin_signed", bool, default=True, help="Sign margins by direction.")
        options.add("margin_style", str, default=None, choices=("short", "long"), help="Style.")

    @ffcore.hookimpl
    def fflib_train_start(self, run: ffcore.training.TrainingRun) -> None:
        config = run.config
        self.seen.append(
            (
                config.setting("margin_every"),
                config.setting("margin_signed"),
                config.setting("margin_style"),
            )
        )


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


TINY = ["train", "--preset", "plain", "--layers", "8", "--epochs", "1", "--device", "cpu"]


#: ``ff eval --per-class --tensorboard DIR`` writes its own summary (a confusion-matrix
#: image) with torch's SummaryWriter: a core option, not the tracing plugin's setting.
EVAL_REPORT = {Path("cli/eval.py"), Path("eval_report.py")}


def test_the_core_names_no_plugin_setting() -> None:
    """No module of ffcore mentions ffdebug, TensorBoard or tracing settings (but ``ff
    eval``'s own TensorBoard report)."""
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if path.relative_to(CORE) in EVAL_REPORT:
            text = path.read_text(encoding="utf-8").lower()
            assert "ffdebug" not in text and "trace_every" not in text
            continue
        text = path.read_text(encoding="utf-8").lower()
        for word in ("tensorboard", "ffdebug", "trace_every", "trace-every", "logdir", "conv"):
            if re.search(rf"\b{word}", text):
                offenders.append(f"{path.relative_to(CORE)}: {word}")
    assert offenders == []


def test_core_settings_take_their_type_from_the_annotation() -> None:
    assert CORE_SETTINGS["epochs"].type is int
    assert CORE_SETTINGS["lr"].type == float | None
    assert CORE_SETTINGS["layers"].type == list[int] | None
    option = setting_option(CORE_SETTINGS["epochs"])
    assert option.type is click.INT and option.opts == ["--epochs", "-e"]
    download = setting_option(CORE_SETTINGS["download"])
    assert download.opts == ["--download"] and download.secondary_opts == ["--no-download"]
    assert set(resumable_settings()) >= {"epochs", "out", "tensorboard", "trace_every"}
    assert "model" not in resumable_settings() and "layers" not in resumable_settings()


@pytest.mark.parametrize(
    ("hint", "good", "bad"),
    [
        (int, [0, -3], [True, 1.5, "1"]),
        (float, [1, 0.5], [False, "0.5"]),
        (bool, [True, False], [0, "true"]),
        (list[int], [[1, 2], []], [[1, "2"], "1,2", [True]]),
        (str | None, ["x", None], [3]),
    ],
)
def test_values_fit_their_declared_type(hint: Any, good: list[Any], bad: list[Any]) -> None:
    assert all(fits(v, hint) for v in good)
    assert not any(fits(v, hint) for v in bad)


def test_a_bad_value_names_the_setting_and_what_it_expects() -> None:
    declared = Setting(name="margin_every", type=int, default=1, check=lambda n: n >= 1)
    with pytest.raises(InvalidValueError, match=r"invalid margin_every: 0 \(expected an integer\)"):
        check_value(declared, 0)
    assert describe_type(list[int]) == "a list of integers"


def test_a_plugin_setting_is_an_option_a_config_key_and_a_checked_value(
    manager: FFPluginManager, tmp_path: Path
) -> None:
    plugin = MarginLog()
    manager.register(plugin, name="margin-log")
    help_text = invoke("train", "--help").output
    assert "--margin-every INTEGER" in help_text and "[default: 1]" in help_text
    assert "--margin-signed / --no-margin-signed" in help_text
    out = tmp_path / "m.pt"
    result = invoke(*TINY, "--margin-every", "3", "--no-margin-signed", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert plugin.seen == [(3, False, None)]
    config = json.loads(result.output)["config"]
    assert config["margin_every"] == 3 and config["margin_signed"] is False
    assert "margin_style" not in config  # unset plugin settings are not written

    bad = invoke(*TINY, "--margin-every", "0")
    assert bad.exit_code == 2
    assert "invalid margin_every: 0 (expected a positive number of epochs)" in bad.output
    assert (
        "'long-ish' is not one of 'short', 'long'"
        in invoke(*TINY, "--margin-style", "long-ish").output
    )

    file = tmp_path / "run.toml"
    file.write_text('margin_style = "long"\nmargin_every = "two"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2: key 'margin_every' = 'two': expected a pos"):
        read_config_file(file)
    file.write_text('margin_style = "long"\nlayers = [8]\nepochs = 1\n', encoding="utf-8")
    assert read_config_file(file)["margin_style"] == "long"
    config_run = invoke("train", "--config", str(file), "--device", "cpu", "--out", str(out))
    assert config_run.exit_code == 0, config_run.output
    assert plugin.seen[-1] == (1, True, "long")


def test_resume_may_change_resumable_plugin_settings_only(
    manager: FFPluginManager, tmp_path: Path
) -> None:
    plugin = MarginLog()
    manager.register(plugin, name="margin-log")
    run = build_run(build_config(overrides={"layers": [8], "epochs": 1, "device": "cpu"}))
    path = save_run(run, tmp_path / "m.pt", train(run))
    resumed = resume_run(path, {"epochs": 2, "margin_every": 2})
    assert resumed.config.setting("margin_every") == 2
    with pytest.raises(InvalidValueError, match="setting when resuming: 'margin_style'"):
        resume_run(path, {"margin_style": "long"})
    result = invoke("train", "--resume", str(path), "--epochs", "2", "--margin-style", "short")
    assert result.exit_code == 2 and "setting when resuming" in result.output


def test_plugin_settings_go_with_their_plugin() -> None:
    assert "--tensorboard" in invoke("train", "--help").output
    without = invoke("-d", "ffdebug", "train", "--help").output
    assert "--tensorboard" not in without and "--trace-every" not in without
    refused = invoke("-d", "ffdebug", *TINY, "--tensorboard", "x")
    assert refused.exit_code == 2 and "No such option '--tensorboard'" in refused.output
    configure_plugins(disabled=["ffdebug"])
    with pytest.raises(ConfigError, match="unknown setting 'tensorboard'"):
        build_config(overrides={"tensorboard": "x"})
    # a checkpoint config with the setting unset (None) still loads without the plugin
    assert TrainConfig.from_dict({"tensorboard": None, "trace_every": None}).plugin_options == {}


def test_to_dict_and_from_dict_round_trip_plugin_settings() -> None:
    config = build_config(overrides={"tensorboard": "tb", "layers": [8]})
    assert config.plugin_options == {"tensorboard": "tb"}
    flat = config.to_dict()
    assert flat["tensorboard"] == "tb" and "plugin_options" not in flat
    assert TrainConfig.from_dict(flat) == config
    assert TrainConfig.from_dict({"plugin_options": {"tensorboard": "tb"}, "layers": [8]}) == config
    assert config.setting("trace_every") is None and config.setting("epochs") == 60


class _Declares:
    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name, self.kwargs = name, kwargs

    @ffcore.hookimpl
    def fflib_add_options(self, options: Options) -> None:
        options.add(self.name, int, help="x", **self.kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("epochs", {}, "declared setting 'epochs', which is one of ff train's own"),
        ("config", {}, "declared setting 'config', which is one of ff train's own"),
        ("trace_every", {}, "which plugin 'ffdebug' already declared"),
        ("x", {"aliases": ("logdir",)}, "declared setting 'logdir', which plugin 'ffdebug'"),
        ("Bad-Name", {}, "expected a snake-case name"),
        ("x", {"default": "three"}, "with a default that does not fit it"),
    ],
)
def test_a_clashing_or_bad_declaration_breaks_only_its_plugin(
    manager: FFPluginManager, name: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        manager.register(_Declares(name, **kwargs), name="declares")
    info = manager.plugin("declares")
    assert info is not None and info.error is not None
    assert manager.settings()["trace_every"].plugin == "ffdebug"
    assert "--epochs" in invoke("train", "--help").output
