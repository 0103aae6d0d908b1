"""Every tensor in a checkpoint, checked against the model it is loaded into, before use.

``load_state_dict`` trusts what it is given: an Adam moment of 30x74 for a 32x74 weight is
accepted, and the fused Adam kernel then writes past its end (a segmentation fault); a
larger one trains silently on garbage. So the weights, each optimizer's hyperparameters
and per-parameter state, and the training state (counters, learning rates, RNG states)
are compared here with what the freshly built model and a fresh run would hold: shape,
dtype, device, layout and, for optimizer steps and counters, range. A file that passes
holds nothing a real run of this model could not have written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ffcore.checkpoint_schema import is_int, is_number, schema_error
from ffcore.limits import MAX_COUNTER

Path_ = str | os.PathLike[str]

#: Per-parameter state keys of the optimizers FFLib builds (:mod:`ffcore.optim`), by class
#: and hyperparameters: a state holding other keys (or missing one) is refused, because
#: the optimizer would read a missing key with a ``KeyError`` mid-training.
_ADAM = ("Adam", "AdamW")


def expected_state_keys(
    optimizer: torch.optim.Optimizer, group: Mapping[str, Any]
) -> set[str] | None:
    """The keys a parameter's state holds after a step of ``optimizer`` (``None``: unknown)."""
    kind = type(optimizer).__name__
    if kind in _ADAM:
        return {"step", "exp_avg", "exp_avg_sq"} | (
            {"max_exp_avg_sq"} if group["amsgrad"] else set()
        )
    if kind == "SGD":
        return {"momentum_buffer"} if group["momentum"] else set()
    if kind == "RMSprop":
        keys = {"step", "square_avg"}
        if group["momentum"]:
            keys.add("momentum_buffer")
        if group["centered"]:
            keys.add("grad_avg")
        return keys
    return None


def check_tensor(
    value: object,
    path: Path_,
    field: str,
    *,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    contiguous: bool = False,
) -> Tensor:
    """``value`` if it is a plain CPU tensor (as ``torch.load`` maps it) of ``shape`` and
    ``dtype``, whose storage holds every element it claims."""
    if not isinstance(value, Tensor):
        raise schema_error(path, field, "a tensor", value)
    if value.layout != torch.strided or value.device.type != "cpu" or value.is_quantized:
        raise schema_error(
            path, field, "a dense tensor on the CPU", f"{value.layout} on {value.device}"
        )
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise schema_error(path, field, f"a tensor of shape {tuple(shape)}", value)
    if dtype is not None and value.dtype != dtype:
        raise schema_error(path, field, f"a {dtype} tensor", value)
    if contiguous and not value.is_contiguous():
        raise schema_error(path, field, "a contiguous tensor", f"strides {value.stride()}")
    if value.numel():
        extent = value.storage_offset() + sum(
            (size - 1) * stride for size, stride in zip(value.shape, value.stride(), strict=True)
        )
        if any(s < 0 for s in value.stride()) or (extent + 1) * value.element_size() > (
            value.untyped_storage().nbytes()
        ):
            raise schema_error(path, field, "a tensor within its storage", value)
    return value


def check_model_state(
    model: nn.Module, weights: Mapping[str, Any], path: Path_, field: str = "model"
) -> None:
    """The saved weights are exactly the model's: the same names, shapes and dtypes."""
    own = model.state_dict()
    missing = [name for name in own if name not in weights]
    if missing:
        listed = ", ".join(repr(n) for n in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise schema_error(path, field, f"weights for {listed} (this model has them)")
    extra = [name for name in weights if name not in own]
    if extra:
        listed = ", ".join(repr(n) for n in extra[:3]) + (" ..." if len(extra) > 3 else "")
        raise schema_error(path, field, f"only this model's weights, not {listed}")
    for name, expected in own.items():
        check_tensor(
            weights[name], path, f"{field}.{name}", shape=expected.shape, dtype=expected.dtype
        )


def _check_hyperparameter(value: object, live: object, path: Path_, field: str) -> None:
    """A saved optimizer hyperparameter of the same kind as the live optimizer's."""
    if isinstance(live, bool) or live is None or isinstance(live, str):
        if value != live or type(value) is not type(live):
            raise schema_error(path, field, f"{live!r}, as this model's optimizer has", value)
    elif is_number(live):
        if not is_number(value) or not math.isfinite(value):
            raise schema_error(path, field, "a finite number", value)
    elif isinstance(live, Tensor):
        tensor = check_tensor(value, path, field, shape=live.shape)
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise schema_error(path, field, "a finite floating-point tensor", value)
    elif isinstance(live, tuple | list):
        if not isinstance(value, tuple | list) or len(value) != len(live):
            raise schema_error(path, field, f"{len(live)} values", value)
        for index, (item, live_item) in enumerate(zip(value, live, strict=True)):
            _check_hyperparameter(item, live_item, path, f"{field}[{index}]")


def _check_step(value: object, path: Path_, field: str) -> None:
    if isinstance(value, Tensor):
        check_tensor(value, path, field, shape=())
        if not value.is_floating_point() and value.dtype not in (torch.int32, torch.int64):
            raise schema_error(path, field, "a number", value)
        number = float(value)
    elif is_number(value):
        number = float(value)
    else:
        raise schema_error(path, field, "a step count", value)
    if not 0 <= number <= MAX_COUNTER or number != math.floor(number):
        raise schema_error(path, field, f"a whole step count from 0 to {MAX_COUNTER}", value)


def check_optimizer_state(
    optimizer: torch.optim.Optimizer, saved: Mapping[str, Any], path: Path_, field: str
) -> None:
    """A saved ``optimizer.state_dict()`` that fits ``optimizer`` parameter by parameter."""
    groups = saved["param_groups"]
    live_groups = optimizer.param_groups
    if len(groups) != len(live_groups):
        raise schema_error(
            path, f"{field}.param_groups", f"{len(live_groups)} parameter groups", groups
        )
    parameters: dict[int, tuple[Tensor, Mapping[str, Any]]] = {}
    for index, (group, live) in enumerate(zip(groups, live_groups, strict=True)):
        where = f"{field}.param_groups[{index}]"
        ids = group.get("params")
        if (
            not isinstance(ids, list)
            or len(ids) != len(live["params"])
            or not all(is_int(i) for i in ids)
        ):
            raise schema_error(
                path, f"{where}.params", f"{len(live['params'])} parameter indices", ids
            )
        unknown = sorted(str(key) for key in group if key not in live)
        if unknown:
            raise schema_error(
                path, where, f"only the hyperparameters of {type(optimizer).__name__}", unknown
            )
        for key, live_value in live.items():
            if key != "params" and key in group:
                _check_hyperparameter(group[key], live_value, path, f"{where}.{key}")
        for number, parameter in zip(ids, live["params"], strict=True):
            if number in parameters:
                raise schema_error(path, f"{where}.params", "each parameter index once", ids)
            parameters[number] = (parameter, group)
    for number, state in saved["state"].items():
        where = f"{field}.state[{number!r}]"
        if number not in parameters:
            raise schema_error(path, where, "the state of a parameter the groups list")
        parameter, group = parameters[number]
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise schema_error(path, where, "a table", state)
        keys = expected_state_keys(optimizer, {**optimizer.defaults, **group})
        # an empty state is what a parameter has before its first step
        if state and keys is not None and set(state) != keys:
            raise schema_error(
                path, where, f"the keys {', '.join(sorted(keys)) or '(none)'}", sorted(state)
            )
        for key, value in state.items():
            if key == "step":
                _check_step(value, path, f"{where}.step")
            elif value is not None or key != "momentum_buffer":  # SGD's may be None
                check_tensor(
                    value,
                    path,
                    f"{where}.{key}",
                    shape=parameter.shape,
                    dtype=parameter.dtype,
                    contiguous=True,
                )


def check_optimizer_states(
    optimizers: Sequence[torch.optim.Optimizer], saved: Sequence[Any], path: Path_
) -> None:
    """One saved state per optimizer of the model, each fitting it."""
    if len(saved) != len(optimizers):
        raise schema_error(
            path,
            "optimizers",
            f"{len(optimizers)} optimizer states (this model has as many)",
            saved,
        )
    for index, (optimizer, state) in enumerate(zip(optimizers, saved, strict=True)):
        check_optimizer_state(optimizer, state, path, f"optimizers[{index}]")


def check_counter(
    state: Mapping[str, Any], key: str, path: Path_, high: int = MAX_COUNTER, field: str = ""
) -> int:
    """``state[key]``: an integer from 0 to ``high``."""
    value = state.get(key)
    if not is_int(value) or not 0 <= value <= high:
        raise schema_error(path, field or f"state.{key}", f"an integer from 0 to {high}", value)
    return int(value)


def check_rng_state(value: object, path: Path_, field: str, like: Tensor) -> Tensor:
    """An RNG state shaped like this torch's (``torch.get_rng_state()``)."""
    return check_tensor(value, path, field, shape=like.shape, dtype=like.dtype, contiguous=True)


def check_selection(value: object, path: Path_) -> None:
    """The kept-epoch counters (``--keep``, ``--early-stop``): a table of counters."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise schema_error(path, "state.selection", "a table", value)
    for key in ("best_epoch", "since_best"):
        if key in value:
            check_counter(value, key, path, field=f"state.selection.{key}")
    best = value.get("best_val_acc", -math.inf)
    if not is_number(best) or math.isnan(best) or best == math.inf:
        raise schema_error(path, "state.selection.best_val_acc", "a number", best)
    if "keep" in value and not isinstance(value["keep"], str):
        raise schema_error(path, "state.selection.keep", "'best' or 'last'", value["keep"])


def _check_weight_table(
    value: object, path: Path_, field: str, like: Mapping[str, Tensor], *, every: bool
) -> None:
    """A table of tensors shaped as ``like``'s, with all its names (``every``) or some."""
    if not isinstance(value, dict):
        raise schema_error(path, field, "a table of tensors", value)
    unknown = [name for name in value if name not in like]
    if unknown:
        raise schema_error(path, field, f"only the averaged weights, not {unknown[0]!r}")
    missing = [name for name in like if name not in value]
    if every and missing:
        raise schema_error(path, field, f"a tensor for {missing[0]!r} (this model trains it)")
    for name, tensor in value.items():
        expected = like[name]
        check_tensor(tensor, path, f"{field}.{name}", shape=expected.shape, dtype=expected.dtype)


def check_average_state(
    value: object, path: Path_, averages: Mapping[str, Tensor] | None, optimizers: int
) -> None:
    """The weight average's state (``--ema-decay``): ``null`` when the run does not average,
    else averages of the trained weights' shapes and a counter and flag per optimizer."""
    field = "state.average"
    if averages is None or value is None:
        if averages is None and value is not None:
            raise schema_error(path, field, "null (the run averages no weights)", value)
        if averages is not None:
            raise schema_error(path, field, "the weight average's state (the run averages)")
        return
    if not isinstance(value, dict):
        raise schema_error(path, field, "a table", value)
    _check_weight_table(value.get("averages"), path, f"{field}.averages", averages, every=True)
    if value.get("training") is not None:
        _check_weight_table(value["training"], path, f"{field}.training", averages, every=False)
    updates, stepped = value.get("updates"), value.get("stepped")
    if not isinstance(updates, list) or len(updates) != optimizers:
        raise schema_error(path, f"{field}.updates", f"a list of {optimizers} counters", updates)
    for index in range(optimizers):
        check_counter({"n": updates[index]}, "n", path, field=f"{field}.updates[{index}]")
    if (
        not isinstance(stepped, list)
        or len(stepped) != optimizers
        or not all(isinstance(flag, bool) for flag in stepped)
    ):
        raise schema_error(path, f"{field}.stepped", f"a list of {optimizers} booleans", stepped)


def check_training_state(
    state: Mapping[str, Any],
    path: Path_,
    *,
    model: nn.Module,
    optimizers: Sequence[torch.optim.Optimizer],
    batches_per_epoch: int,
    averages: Mapping[str, Tensor] | None = None,
) -> None:
    """The counters, learning rates, RNG states and weights a run resumes from
    (``averages``: the run's weight averages, when it averages)."""
    check_average_state(state.get("average"), path, averages, len(optimizers))
    resume_weights = state.get("resume_weights")
    if resume_weights is not None:
        if not isinstance(resume_weights, dict):
            raise schema_error(path, "state.resume_weights", "a table of tensors", resume_weights)
        check_model_state(model, resume_weights, path, field="state.resume_weights")
    check_selection(state.get("selection"), path)
    check_counter(state, "epoch", path)
    check_counter(state, "batch", path, high=batches_per_epoch)
    check_counter(state, "step", path)
    check_counter(state, "skipped", path)
    loss_sum = state.get("loss_sum")
    if not is_number(loss_sum):
        raise schema_error(path, "state.loss_sum", "a number", loss_sum)
    reference = state.get("loss_reference")
    if reference is not None and (not is_number(reference) or not math.isfinite(reference)):
        raise schema_error(path, "state.loss_reference", "a finite number or null", reference)
    base_lrs = state.get("base_lrs")
    shape = [len(optimizer.param_groups) for optimizer in optimizers]
    if (
        not isinstance(base_lrs, list)
        or [len(lrs) if isinstance(lrs, list) else -1 for lrs in base_lrs] != shape
        or not all(
            is_number(lr) and math.isfinite(lr) and lr >= 0 for lrs in base_lrs for lr in lrs
        )
    ):
        raise schema_error(
            path,
            "state.base_lrs",
            f"finite learning rates for {shape} parameter groups per optimizer",
            base_lrs,
        )
    check_rng_state(state.get("rng_cpu"), path, "state.rng_cpu", torch.get_rng_state())
    cuda = state.get("rng_cuda")
    if not isinstance(cuda, list):
        raise schema_error(path, "state.rng_cuda", "a list of CUDA RNG states", cuda)
    for index, saved in enumerate(cuda):
        # a run saved on another machine may have had more or fewer GPUs: resuming restores
        # the states of the devices both have, each of the size this torch uses
        check_tensor(saved, path, f"state.rng_cuda[{index}]", dtype=torch.uint8, contiguous=True)
    if cuda and torch.cuda.is_available():
        live = torch.cuda.get_rng_state_all()
        for index, (saved, own) in enumerate(zip(cuda, live, strict=False)):
            check_rng_state(saved, path, f"state.rng_cuda[{index}]", own)
