"""``ff train`` settings: defaults, presets, TOML config files and option overrides.

Precedence, lowest first: built-in defaults, the preset (``preset = "seed"``), the config
file, command-line options. A config file uses the option names with underscores::

    model = "ffnet"
    dataset = "digits"
    layers = [2000, 2000]
    epochs = 30
    log_every = 5                # a setting a plugin declared, written like any other
    [model_options]
    layer_range = "1:"

Each core setting is declared once, as a :class:`TrainConfig` field (type annotation plus
:func:`~ffcore.settings.setting_field` metadata); plugins declare theirs in the
``fflib_add_options`` hook and their values live in :attr:`TrainConfig.plugin_options`.
Both kinds read and serialise as flat keys (``log_every = 5``).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffcore.choices import PRECISION_NAMES
from ffcore.errors import ConfigError, InvalidValueError
from ffcore.limits import (
    MAX_CONFIG_BYTES,
    MAX_LAYER_WIDTH,
    MAX_LAYERS,
    MAX_NESTING,
    MAX_SEED,
    nesting_depth,
)
from ffcore.settings import (
    Setting,
    check_value,
    dataclass_settings,
    parse_int_list,
    setting_field,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_COMPONENT = "a component name"
#: ``--parallel``: how several processes share a run (see :mod:`ffcore.distributed`).
PARALLEL_MODES = ("data", "layers")
_OPTIONS = "a table of options"


def _positive_widths(widths: list[int]) -> bool:
    return 1 <= len(widths) <= MAX_LAYERS and all(1 <= w <= MAX_LAYER_WIDTH for w in widths)


def _device(name: str) -> bool:
    return re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", name) is not None


#: Settings that are also model options: ``layers = [64]`` and ``-O model.layers=[64]``
#: are one setting (:meth:`TrainConfig.model_kwargs` passes both to the model factory).
MODEL_SETTINGS: tuple[str, ...] = ("layers", "lr", "threshold", "goodness", "loss")


@dataclass
class TrainConfig:
    """Everything ``ff train`` needs; ``None`` means "the component's own default".

    A config remembers which settings its maker gave (:meth:`given`): a run starts from a
    preset (the data set's recipe unless ``preset`` names another) and the given settings
    win over it, whether the config came from ``ff train`` or from Python
    (:func:`ffcore.recipes.resolve_config`, which :func:`ffcore.training.build_run` calls).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> TrainConfig:
        config = super().__new__(cls)
        # the dataclass __init__ takes fields in order, so positional ones are the first
        object.__setattr__(config, "_given", frozenset((*FIELDS[: len(args)], *kwargs)))
        return config

    preset: str | None = setting_field(
        None,
        "Named settings to start from: 'seed' (FFLib 0.3.0's), 'plain' (generic defaults). "
        "Default: the data set's recipe, when there is one for it and the model chosen.",
        expected="a preset name",
    )
    model: str = setting_field(
        "ffnet", "Model name (see ff list-plugins).", short="-m", expected=_COMPONENT
    )
    dataset: str = setting_field("digits", "Dataset name.", expected=_COMPONENT)
    layers: list[int] | None = setting_field(
        None,
        "Layer widths, e.g. 2000,2000.",
        expected=(
            f"a list of 1 to {MAX_LAYERS:,} widths from 1 to {MAX_LAYER_WIDTH:,}, e.g. [2000, 2000]"
        ),
        check=_positive_widths,
        parse=parse_int_list,
        metavar="W1,W2,...",
    )
    epochs: int = setting_field(
        60,
        "Training epochs.",
        short="-e",
        expected="a non-negative integer",
        check=lambda n: n >= 0,
        resumable=True,
    )
    batch_size: int = setting_field(
        128, "Batch size.", short="-b", expected="a positive integer", check=lambda n: n >= 1
    )
    lr: float | None = setting_field(
        None,
        "Learning rate (of every layer's optimizer).",
        expected="a positive number",
        check=lambda v: 0 < v < float("inf"),
    )
    lr_schedule: str = setting_field(
        "linear-cooldown",
        "Learning-rate schedule over the epochs.",
        choices=("constant", "linear-cooldown", "cosine"),
        expected="'constant', 'linear-cooldown' or 'cosine'",
    )
    ema_decay: float = setting_field(
        0.0,
        "Evaluate and keep an exponential moving average of the weights with this decay "
        "per optimizer step, e.g. 0.999 (0: the last step's weights).",
        expected="a number in [0, 1)",
        check=lambda v: 0 <= v < 1,
    )
    threshold: float | None = setting_field(
        None, "Goodness threshold (default: the goodness').", expected="a finite number"
    )
    goodness: str | None = setting_field(None, "Goodness function name.", expected=_COMPONENT)
    loss: str | None = setting_field(None, "FF loss name.", expected=_COMPONENT)
    negatives: str = setting_field("random", "Negative sampler name.", expected=_COMPONENT)
    probe: str | None = setting_field(
        None, "Probe name (default: the model's own).", expected=_COMPONENT
    )
    seed: int = setting_field(
        0,
        "Random seed.",
        expected="an integer from 0 to 2^63 - 1",
        check=lambda n: 0 <= n <= MAX_SEED,
    )
    device: str = setting_field(
        "auto",
        "auto, cpu, cuda, cuda:N or mps.",
        expected="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
        check=_device,
        resumable=True,
    )
    #: ``fp32``, or ``bf16``: mixed precision, matrix products in bfloat16 (see
    #: :mod:`ffcore.precision`).
    precision: str = setting_field(
        "fp32",
        "fp32, or bf16: mixed precision, matrix products in bfloat16.",
        choices=PRECISION_NAMES,
        expected="'fp32' or 'bf16'",
        resumable=True,
    )
    nproc: int | None = setting_field(
        None,
        "Train in N processes on this machine (torch's elastic launcher; see "
        "docs/distributed.md). Under torchrun it is ignored.",
        expected="a positive number of processes",
        check=lambda n: n >= 1,
        resumable=True,
    )
    parallel: str | None = setting_field(
        None,
        "With several processes: 'data' (each trains on a share of every batch; the "
        "default) or 'layers' (a pipeline: each trains a run of layers).",
        choices=PARALLEL_MODES,
        expected="'data' or 'layers'",
        resumable=True,
    )
    data_parallel: int | None = setting_field(
        None,
        "With --parallel layers: processes per pipeline stage, each on a share of every "
        "batch (a divisor of the process count).",
        expected="a positive number of processes",
        check=lambda n: n >= 1,
        resumable=True,
    )
    val_split: float = setting_field(
        0.1,
        "Fraction of training data for validation.",
        expected="a number in [0, 1)",
        check=lambda v: 0 <= v < 1,
    )
    use: float = setting_field(
        1.0,
        "Fraction of the data set to use, in (0, 1].",
        short="-u",
        expected="a number in (0, 1]",
        check=lambda v: 0 < v <= 1,
    )
    data_root: str | None = setting_field(
        None, "Data directory.", expected="a directory path", path="dir", resumable=True
    )
    download: bool = setting_field(
        True, "Allow downloading data.", expected="true or false", resumable=True
    )
    out: str | None = setting_field(
        None, "Checkpoint path.", short="-o", expected="a file path", path="file", resumable=True
    )
    save_every: int = setting_field(
        0,
        "Also save the checkpoint every N epochs.",
        expected="a non-negative number of epochs (0: only at the end)",
        check=lambda n: n >= 0,
        resumable=True,
    )
    on_nonfinite: str = setting_field(
        "error",
        "A NaN/inf loss: stop with an error, skip the batch, or don't check.",
        choices=("error", "skip", "off"),
        expected="'error', 'skip' or 'off'",
        resumable=True,
    )
    keep: str | None = setting_field(
        None,
        "Which epoch's weights to keep: best (highest validation accuracy) or last. "
        "Default: best when there is a validation split, else last.",
        choices=("best", "last"),
        expected="'best' or 'last'",
    )
    early_stop: int = setting_field(
        0,
        "Stop after N epochs without a higher validation accuracy (0: never).",
        expected="a non-negative number of epochs (0: off)",
        check=lambda n: n >= 0,
        resumable=True,
        metavar="N",
    )
    model_options: dict[str, Any] = setting_field({}, expected=_OPTIONS, cli=False)
    dataset_options: dict[str, Any] = setting_field({}, expected=_OPTIONS, cli=False)
    negatives_options: dict[str, Any] = setting_field({}, expected=_OPTIONS, cli=False)
    #: Settings declared by plugins (``fflib_add_options``), by name; only those set.
    plugin_options: dict[str, Any] = setting_field({}, expected=_OPTIONS, cli=False)

    def __post_init__(self) -> None:
        if isinstance(self.plugin_options, Mapping):  # anything else fails validation
            self.plugin_options = {k: v for k, v in self.plugin_options.items() if v is not None}
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready copy, plugin settings as top-level keys like the core's."""
        values = dataclasses.asdict(self)
        plugin = values.pop("plugin_options")
        return {**values, **plugin}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`: core keys are fields, the others plugin settings.

        A ``plugin_options`` table is accepted too; a plugin setting set to ``None`` counts
        as not set.
        """
        core: dict[str, Any] = {}
        plugin: dict[str, Any] = {}
        for key, value in values.items():
            if key == "plugin_options":
                if not isinstance(value, Mapping):
                    raise InvalidValueError(key, value, _OPTIONS)
                plugin.update(value)
            elif key in FIELDS:
                core[key] = value
            else:
                plugin[key] = value
        return cls(**core, plugin_options=plugin)

    def given(self) -> dict[str, Any]:
        """The settings the config's maker set (keyword or positional arguments, the keys
        of :meth:`from_dict`), flat as in :meth:`to_dict`; the rest are defaults."""
        given: frozenset[str] = getattr(self, "_given", frozenset(FIELDS))
        values = {name: getattr(self, name) for name in FIELDS if name in given}
        values.pop("plugin_options", None)
        return {**values, **self.plugin_options}

    def model_kwargs(self) -> dict[str, Any]:
        """Options for the model factory: the explicit ones plus ``model_options``."""
        kwargs = dict(self.model_options)
        for key in MODEL_SETTINGS:
            value = getattr(self, key)
            if value is not None:
                kwargs[key] = value
        return kwargs

    def setting(self, name: str) -> Any:
        """The value of any setting, core or plugin; an unset plugin setting's default."""
        if name in FIELDS:
            return getattr(self, name)
        if name in self.plugin_options:
            return self.plugin_options[name]
        return plugin_setting(name).default


#: The core settings, by name, in ``TrainConfig`` field order.
CORE_SETTINGS: dict[str, Setting] = dataclass_settings(TrainConfig)
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
#: Names ``ff train`` uses for options that are not settings; no plugin setting may take them.
COMMAND_OPTIONS: tuple[str, ...] = ("config", "resume", "option", "json", "help")


def plugin_settings() -> dict[str, Setting]:
    """The settings the enabled plugins declare (``fflib_add_options``), by name."""
    from ffcore.plugin_manager import get_plugin_manager

    return get_plugin_manager().settings()


def all_settings() -> dict[str, Setting]:
    """Core settings, then the plugins'."""
    return {**CORE_SETTINGS, **plugin_settings()}


def plugin_setting(name: str) -> Setting:
    """The plugin setting called ``name``; :class:`ConfigError` if no enabled plugin has it."""
    found = plugin_settings().get(name)
    if found is None:
        raise ConfigError(f"unknown setting {name!r} (known keys: {', '.join(all_settings())})")
    return found


def validate(config: TrainConfig) -> None:
    """Check every setting's type and range; raise :class:`InvalidValueError` naming it.

    Component options are checked against their factory's parameters
    (:mod:`ffcore.component_options`) when the component is registered.
    """
    for name, declared in CORE_SETTINGS.items():
        check_value(declared, getattr(config, name))
    for name, value in config.plugin_options.items():
        check_value(plugin_setting(name), value)
    _check_component_options(config)


def _check_component_options(config: TrainConfig) -> None:
    from ffcore.component_options import check_component_options
    from ffcore.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    for kind, name, options in (
        ("model", config.model, config.model_options),
        ("dataset", config.dataset, config.dataset_options),
        ("negatives", config.negatives, config.negatives_options),
    ):
        registry = manager.registry(kind)
        if options and name in registry:
            check_component_options(registry.get(name), options)


def resumable_settings() -> tuple[str, ...]:
    """Settings ``ff train --resume`` may change; everything else comes from the checkpoint."""
    return tuple(name for name, s in all_settings().items() if s.resumable)


def parse_value(raw: str) -> Any:
    """A command-line value read as TOML (numbers, booleans, strings, arrays); ``true`` and
    ``false`` in any letter case are booleans; other text that is not valid TOML is taken
    as a plain string (whose type the option's check then judges)."""
    if raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw


def _line_of(text: str, key: str) -> int | None:
    name = re.escape(key)
    pattern = re.compile(rf"^[ \t]*(?:{name}[ \t]*=|\[[ \t]*{name}[ \t]*\])", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file, checked against the declared settings' keys and types.

    Errors name the file, the line and the key.
    """
    path = Path(path)
    text = _config_text(path)
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: arrays or tables nested too deeply (at most {MAX_NESTING} levels)"
        ) from None
    if nesting_depth(settings) > MAX_NESTING:
        raise ConfigError(f"{path}: arrays or tables nested more than {MAX_NESTING} levels deep")
    known = all_settings()
    for key, value in settings.items():
        where = f"{path}, line {_line_of(text, key) or '?'}"
        declared = known.get(key)
        if declared is None:
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {', '.join(known)})")
        try:
            check_value(declared, value)
        except InvalidValueError as exc:
            raise ConfigError(
                f"{where}: key {key!r} = {value!r}: expected {exc.expected}"
            ) from None
    return settings


def _config_text(path: Path) -> str:
    """A config file's text: UTF-8 (a byte-order mark is allowed), at most
    :data:`~ffcore.limits.MAX_CONFIG_BYTES`."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: a config file is at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); a config file is TOML, saved as UTF-8"
        ) from None


def build_config(
    *,
    preset: Mapping[str, Any] | None = None,
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Merge preset, file and overrides by :func:`ffcore.recipes.merge_settings` (later
    wins; option tables merge key by key)."""
    from ffcore.recipes import merge_settings

    for layer in (preset or {}, file or {}, overrides or {}):
        for key in layer:
            if key not in CORE_SETTINGS and key not in plugin_settings():
                known = ", ".join(all_settings())
                raise ConfigError(f"unknown setting {key!r} (known keys: {known})")
    return TrainConfig.from_dict(merge_settings(preset or {}, file or {}, overrides or {}))
