"""``ff train`` settings: defaults, presets, TOML config files and option overrides.

Precedence, lowest first: built-in defaults, the preset (``preset = "seed"``), the config
file, command-line options. A config file uses the option names with underscores::

    model = "ffnet"
    dataset = "digits"
    layers = [2000, 2000]
    epochs = 30
    [model_options]
    layer_range = "1:"
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffcore.errors import ConfigError, InvalidValueError
from ffcore.precision import PRECISIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass
class TrainConfig:
    """Everything ``ff train`` needs; ``None`` means "the component's own default"."""

    model: str = "ffnet"
    dataset: str = "digits"
    layers: list[int] | None = None
    epochs: int = 60
    batch_size: int = 128
    lr: float | None = None
    lr_schedule: str = "linear-cooldown"
    threshold: float | None = None
    goodness: str | None = None
    loss: str | None = None
    negatives: str = "random"
    probe: str | None = None
    seed: int = 0
    device: str = "auto"
    #: ``fp32``, or ``bf16``: mixed precision, matrix products in bfloat16 (see
    #: :mod:`ffcore.precision`).
    precision: str = "fp32"
    val_split: float = 0.1
    use: float = 1.0
    data_root: str | None = None
    download: bool = True
    out: str | None = None
    save_every: int = 0
    on_nonfinite: str = "error"
    #: Where tracing plugins (ffdebug) write TensorBoard logs; ``None``: no tracing.
    tensorboard: str | None = None
    #: Trace every N batches (``None``: the tracing plugin's default).
    trace_every: int | None = None
    preset: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    negatives_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready copy."""
        return dataclasses.asdict(self)

    def model_kwargs(self) -> dict[str, Any]:
        """Options for the model factory: the explicit ones plus ``model_options``."""
        kwargs = dict(self.model_options)
        for key in ("layers", "lr", "threshold", "goodness", "loss"):
            value = getattr(self, key)
            if value is not None:
                kwargs[key] = value
        return kwargs


# field name -> (accepted Python types, what to say is expected)
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a component name"),
    "dataset": ((str,), "a component name"),
    "layers": ((list,), "a list of positive integers, e.g. [2000, 2000]"),
    "epochs": ((int,), "a non-negative integer"),
    "batch_size": ((int,), "a positive integer"),
    "lr": ((int, float), "a positive number"),
    "lr_schedule": ((str,), "'constant', 'linear-cooldown' or 'cosine'"),
    "threshold": ((int, float), "a number"),
    "goodness": ((str,), "a component name"),
    "loss": ((str,), "a component name"),
    "negatives": ((str,), "a component name"),
    "probe": ((str,), "a component name"),
    "seed": ((int,), "an integer"),
    "device": ((str,), "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    "precision": ((str,), "'fp32' or 'bf16'"),
    "val_split": ((int, float), "a number in [0, 1)"),
    "use": ((int, float), "a number in (0, 1]"),
    "data_root": ((str,), "a directory path"),
    "download": ((bool,), "true or false"),
    "out": ((str,), "a file path"),
    "save_every": ((int,), "a non-negative number of epochs (0: only at the end)"),
    "on_nonfinite": ((str,), "'error', 'skip' or 'off'"),
    "tensorboard": ((str,), "a log directory"),
    "trace_every": ((int,), "a positive number of batches"),
    "preset": ((str,), "a preset name"),
    "model_options": ((dict,), "a table of options"),
    "dataset_options": ((dict,), "a table of options"),
    "negatives_options": ((dict,), "a table of options"),
}

FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
#: Fields whose default is ``None`` ("the component's own default").
_OPTIONAL = frozenset(f.name for f in dataclasses.fields(TrainConfig) if f.default is None)


def _bad(key: str, value: object) -> InvalidValueError:
    return InvalidValueError(key, value, _TYPES[key][1])


def validate(config: TrainConfig) -> None:
    """Check every field's type and range; raise :class:`InvalidValueError` naming it."""
    for key in FIELDS:
        value = getattr(config, key)
        if value is None:
            if key not in _OPTIONAL:
                raise _bad(key, value)
            continue
        types, _ = _TYPES[key]
        if isinstance(value, bool) and bool not in types:
            raise _bad(key, value)
        if not isinstance(value, types):
            raise _bad(key, value)
    if config.layers is not None and (
        not config.layers
        or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in config.layers)
    ):
        raise _bad("layers", config.layers)
    if config.epochs < 0:
        raise _bad("epochs", config.epochs)
    if config.batch_size < 1:
        raise _bad("batch_size", config.batch_size)
    if config.lr is not None and not 0 < config.lr < float("inf"):
        raise _bad("lr", config.lr)
    if config.trace_every is not None and config.trace_every < 1:
        raise _bad("trace_every", config.trace_every)
    if config.save_every < 0:
        raise _bad("save_every", config.save_every)
    if config.on_nonfinite not in ("error", "skip", "off"):
        raise _bad("on_nonfinite", config.on_nonfinite)
    if config.lr_schedule not in ("constant", "linear-cooldown", "cosine"):
        raise _bad("lr_schedule", config.lr_schedule)
    if not 0 <= config.val_split < 1:
        raise _bad("val_split", config.val_split)
    if not 0 < config.use <= 1:
        raise _bad("use", config.use)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", config.device):
        raise _bad("device", config.device)
    if config.precision not in PRECISIONS:
        raise _bad("precision", config.precision)


def parse_value(raw: str) -> Any:
    """A command-line value read as TOML (numbers, booleans, strings, arrays); text that
    is not valid TOML is taken as a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _line_of(text: str, key: str) -> int | None:
    name = re.escape(key)
    pattern = re.compile(rf"^[ \t]*(?:{name}[ \t]*=|\[[ \t]*{name}[ \t]*\])", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file, checked against :class:`TrainConfig`'s keys and types.

    Errors name the file, the line and the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc
    for key, value in settings.items():
        where = f"{path}, line {_line_of(text, key) or '?'}"
        if key not in _TYPES:
            known = ", ".join(FIELDS)
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {known})")
        types, expected = _TYPES[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ConfigError(f"{where}: key {key!r} = {value!r}: expected {expected}")
    return settings


def build_config(
    *,
    preset: Mapping[str, Any] | None = None,
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Merge preset, file and overrides (later wins; option tables merge key by key)."""
    merged: dict[str, Any] = {}
    for layer in (preset or {}, file or {}, overrides or {}):
        for key, value in layer.items():
            if key not in _TYPES:
                raise ConfigError(f"unknown setting {key!r} (known keys: {', '.join(FIELDS)})")
            if key.endswith("_options") and isinstance(value, Mapping):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return TrainConfig(**merged)
