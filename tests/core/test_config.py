"""Config files and settings: precedence, validation, errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ffcore.config import TrainConfig, build_config, read_config_file
from ffcore.errors import ConfigError, InvalidValueError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_valid_file_and_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'model = "ffnet"\nepochs = 5\nlayers = [64, 32]\n[model_options]\nlayer_range = "1:"\n',
    )
    settings = read_config_file(path)
    config = build_config(
        preset={"epochs": 9, "lr": 0.5, "model_options": {"norm": "l2"}},
        file=settings,
        overrides={"epochs": 2},
    )
    assert config.epochs == 2  # command line beats file beats preset
    assert config.lr == 0.5  # preset value survives where nothing overrides it
    assert config.layers == [64, 32]
    assert config.model_options == {"norm": "l2", "layer_range": "1:"}
    assert config.model_kwargs() == {
        "norm": "l2",
        "layer_range": "1:",
        "layers": [64, 32],
        "lr": 0.5,
    }


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'model = "ffnet"\n\nlearning_rate = 0.1\n')
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "'learning_rate'" in message


def test_wrong_type_names_key_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, 'epochs = "ten"\n')
    with pytest.raises(ConfigError, match=r"line 1: key 'epochs' = 'ten': expected an? "):
        read_config_file(path)
    path = write(tmp_path, "download = 1\n")
    with pytest.raises(ConfigError, match="'download'"):
        read_config_file(path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'model = "ffnet"\nepochs = = 3\n')
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    assert str(path) in str(info.value) and "line 2" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", -1),
        ("batch_size", 0),
        ("lr", -0.1),
        ("lr", float("inf")),
        ("use", 0.0),
        ("use", 1.5),
        ("val_split", 1.0),
        ("device", "gpu"),
        ("layers", [10, 0]),
        ("layers", []),
        ("lr_schedule", "step"),
        ("epochs", True),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidValueError) as info:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
    assert repr(value) in str(info.value)


def test_build_config_rejects_unknown_override() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        build_config(overrides={"colour": "red"})
