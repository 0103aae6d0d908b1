"""One speed measurement in a fresh process, printed as one JSON line.

Run by ``benchmarks/speed.py``, which alternates the implementations round by round.
``--impl`` picks what is timed:

- ``ours``: the FFLib source tree on ``PYTHONPATH`` (this one, or a peer tree that
  ``speed.py`` puts there: the same code below measures both);
- ``seed``: FFLib 0.3.0, installed with ``pip --target`` into ``--peer-path``;
- ``loewex``: loeweX/Forward-Forward (a checkout at ``--peer-path``), as shipped or with
  its extras off (``--variant``);
- ``matmul``: the matrix products of a step and nothing else, the ceiling.

Every case uses the same synthetic standardised inputs (784 features, 10 classes) and the
same thread count, so only the implementations differ. With ``--flops``, one more call
after the timed ones runs under torch's ``FlopCounterMode`` and its count is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import json
import os
import resource
import statistics
import sys
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

FEATURES, CLASSES = 784, 10
#: Samples per prediction call: every implementation predicts 10k samples in these chunks.
PREDICT_CHUNK = 1000


@dataclass
class Timed:
    """What a case times: ``call`` (one training step or one whole prediction), run
    ``warmup`` times before the clock starts."""

    call: Callable[[], object]
    warmup: int


#: The clocks ``--clock`` chooses from: wall time, or the process's CPU time (all its
#: threads), which a machine shared with other work barely disturbs at one thread (with
#: more, it also counts the time threads spend waiting for each other).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def chunked_prediction(
    predict_chunk: Callable[[Tensor], object], x: Tensor, device: torch.device
) -> Timed:
    """Predicting all of ``x`` as every implementation does: in chunks of
    :data:`PREDICT_CHUNK`, timed until the device has finished."""

    @torch.no_grad()
    def predict() -> None:
        for chunk in torch.split(x, PREDICT_CHUNK):
            predict_chunk(chunk)
        sync(device)

    return Timed(predict, warmup=1)


def timed(
    step: Callable[[], object], repeats: int, warmup: int, clock: str = "wall"
) -> list[float]:
    """Seconds per call of ``step`` on ``clock``, ``repeats`` times after ``warmup`` calls."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = now()
        step()
        times.append(now() - started)
    return times


def counted_flops(step: Callable[[], object]) -> int:
    """The FLOPs torch counts in one call of ``step`` (matrix products: what a FLOP count
    of a dense network means; element-wise work is not counted)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def data(count: int, device: torch.device) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(count, FEATURES, generator=generator)
    y = torch.randint(0, CLASSES, (count,), generator=generator)
    return x.to(device), y.to(device)


def wrong_labels(y: Tensor) -> Tensor:
    return (y + torch.randint(1, CLASSES, y.shape, device=y.device)) % CLASSES


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cycling(count: int) -> Callable[[], int]:
    """The index of the next batch out of ``count``, round and round."""
    position = [0]

    def following() -> int:
        index = position[0] % count
        position[0] += 1
        return index

    return following


# --- FFLib (the source tree on the path) --------------------------------------------------


def batch_trainer(model: Any) -> Callable[[Tensor, Tensor, Any], Tensor]:
    """``model.train_batch`` called the way the FFLib tree on the path takes it:
    ``train_batch(Batch(x, y), negatives)`` where ``ffcore.interfaces`` has a ``Batch``,
    ``train_batch(x, y, negatives)`` in trees from before it. One worker then times a tree
    and the commit before a change of that API side by side."""
    try:
        from ffcore.interfaces import Batch  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return lambda x, y, negatives: model.train_batch(x, y, negatives)
    return lambda x, y, negatives: model.train_batch(Batch(x, y), negatives)


def ours(
    case: str, batch: int, widths: list[int], device: torch.device, samples: int = 60_000
) -> Timed:
    """``case`` with FFLib (under the caller's precision context), in a process set up as
    ``ffcore.training.train`` sets it up (trees from before :mod:`ffcore.allocator` left
    the C allocator alone)."""
    import ffcore

    try:
        from ffcore.allocator import reuse_freed_memory
    except ImportError:
        pass
    else:
        reuse_freed_memory()
    torch.manual_seed(0)
    negatives = ffcore.create_negatives("random")
    if case in ("ffnet-train", "ffc-train", "ffrnn-train"):
        name = case.removesuffix("-train")
        extra: dict[str, Any] = {"schedule": "joint"} if name == "ffc" else {}
        model = ffcore.create_model(name, (FEATURES,), CLASSES, layers=widths, **extra)
        model.to(device)
        model.on_epoch_start(0, 2)
        train = batch_trainer(model)
        blocks = 16 if name == "ffnet" else 4  # batches cycled through
        x, y = data(batch * blocks, device)
        following = cycling(blocks)

        def step() -> None:
            start = following() * batch
            train(x[start : start + batch], y[start : start + batch], negatives)
            sync(device)

        return Timed(step, warmup=3 if name == "ffnet" else 2)
    if case in ("ffnet-tryall", "ffc-infer", "ffrnn-tryall"):
        name = {"ffnet-tryall": "ffnet", "ffc-infer": "ffc", "ffrnn-tryall": "ffrnn"}[case]
        model = ffcore.create_model(name, (FEATURES,), CLASSES, layers=widths)
        model.to(device)
        probe = ffcore.create_probe("classifier" if name == "ffc" else "tryall")
        x, _ = data(batch, device)
        return chunked_prediction(lambda chunk: probe.predict(model, chunk), x, device)
    raise SystemExit(f"unknown case {case}")


def epoch_overhead(
    batch: int, widths: list[int], device: torch.device, samples: int
) -> dict[str, float]:
    """One epoch (``samples``, MNIST-sized by default) through the trainer loop pieces:
    the share of the epoch spent outside ``model.train_batch`` (data, Python, bookkeeping)."""
    import ffcore
    from ffcore.data import iterate_batches
    from ffcore.interfaces import Split

    torch.manual_seed(0)
    negatives = ffcore.create_negatives("random")
    model = ffcore.create_model("ffnet", (FEATURES,), CLASSES, layers=widths)
    model.to(device)
    x, y = data(samples, device)
    split = Split(x, y)
    inside = [0.0, 0.0]  # seconds in train_batch, batches trained
    train = batch_trainer(model)

    def counted(xb: Tensor, yb: Tensor, sampler: Any) -> Tensor:
        started = time.perf_counter()
        loss = train(xb, yb, sampler)
        inside[0] += time.perf_counter() - started
        inside[1] += 1
        return loss

    def epoch() -> None:
        inside[0] = inside[1] = 0.0
        loss_sum = torch.zeros((), device=device)
        generator = torch.Generator().manual_seed(0)
        for xb, yb in iterate_batches(split, batch, shuffle=True, generator=generator):
            loss_sum = loss_sum + counted(xb, yb, negatives)
        float(loss_sum)

    wall = timed(epoch, 1, warmup=0)[0]
    return {"outside_fraction": 1.0 - inside[0] / wall, "epoch_seconds": wall, "batches": inside[1]}


# --- FFLib 0.3.0 -------------------------------------------------------------------------


def seed(case: str, batch: int, widths: list[int], device: torch.device) -> Timed:
    from fflib.nn.ff_linear import FFLinear  # type: ignore[import-not-found]
    from fflib.nn.ff_net import FFNet  # type: ignore[import-not-found]
    from fflib.probes.one_hot import TryAllClasses  # type: ignore[import-not-found]

    torch.manual_seed(0)

    def dense_layers() -> list[Any]:
        sizes = [FEATURES + CLASSES, *widths]
        return [
            FFLinear(size_in, size_out, 20.0, 0.02, device=device)
            for size_in, size_out in itertools.pairwise(sizes)
        ]

    def combine(x: Tensor, y: Tensor) -> Tensor:
        return torch.cat((x, F.one_hot(y, CLASSES).float()), 1)

    if case == "ffnet-train":
        net = FFNet(dense_layers(), device)
        x, y = data(batch * 16, device)
        following = cycling(16)

        def step() -> None:
            start = following() * batch
            xb, yb = x[start : start + batch], y[start : start + batch]
            net.run_train_combined(combine(xb, yb), combine(xb, wrong_labels(yb)))
            sync(device)

        return Timed(step, warmup=3)
    if case == "ffnet-tryall":
        net = FFNet(dense_layers(), device)
        probe = TryAllClasses(lambda xb, yb: net(torch.cat((xb, yb), 1)), CLASSES)
        x, _ = data(batch, device)
        return chunked_prediction(probe.predict, x, device)
    if case in ("ffc-train", "ffc-infer"):
        from fflib.nn.ffc import FFC  # type: ignore[import-not-found]

        ffc = FFC(dense_layers(), 1e-4, CLASSES, device)
        if case == "ffc-infer":
            x, _ = data(batch, device)

            def infer(chunk: Tensor) -> object:  # with the neutral (all-zero) label
                return ffc(torch.cat((chunk, torch.zeros(chunk.shape[0], CLASSES)), 1))

            return chunked_prediction(infer, x, device)
        x, y = data(batch * 4, device)
        following = cycling(4)

        def ffc_step() -> None:  # an FF step and a classifier step, like our joint schedule
            start = following() * batch
            xb, yb = x[start : start + batch], y[start : start + batch]
            ffc.run_train_combined(combine(xb, yb), combine(xb, wrong_labels(yb)))
            neutral = torch.cat((xb, torch.zeros(xb.shape[0], CLASSES)), 1)
            ffc.train_classifier(neutral, F.one_hot(yb, CLASSES).float())
            sync(device)

        return Timed(ffc_step, warmup=2)
    if case in ("ffrnn-train", "ffrnn-tryall"):
        from fflib.nn.ff_rnn import FFRNN  # type: ignore[import-not-found]

        rnn = FFRNN.from_dimensions(
            [FEATURES, *widths, CLASSES],
            10,
            3,
            8,
            True,
            torch.nn.ReLU(),
            20.0,
            torch.optim.Adam,
            0.02,
            device=device,
        )
        if case == "ffrnn-tryall":
            probe = TryAllClasses(lambda xb, yb: rnn(xb, yb), CLASSES)
            x, _ = data(batch, device)
            return chunked_prediction(probe.predict, x, device)
        x, y = data(batch * 4, device)
        following = cycling(4)

        def rnn_step() -> None:
            start = following() * batch
            xb, yb = x[start : start + batch], y[start : start + batch]
            yw = wrong_labels(yb)
            rnn.run_train(xb, F.one_hot(yb, CLASSES).float(), xb, F.one_hot(yw, CLASSES).float())
            sync(device)

        return Timed(rnn_step, warmup=2)
    raise SystemExit(f"unknown case {case} for FFLib 0.3.0")


# --- loeweX/Forward-Forward ---------------------------------------------------------------

#: loeweX's config.yaml, less what only its data loading and logging read.
LOEWEX_DEFAULTS: dict[str, dict[str, float]] = {
    "model": {"peer_normalization": 0.03, "momentum": 0.9},
    "training": {
        "learning_rate": 1e-3,
        "weight_decay": 3e-4,
        "momentum": 0.9,
        "downstream_learning_rate": 1e-2,
        "downstream_weight_decay": 3e-3,
    },
}
LOEWEX_VARIANTS = ("shipped", "ff-only")


def import_without_hydra() -> None:
    """Stand-ins for ``hydra.utils`` and ``omegaconf`` when they are not installed.

    loeweX's ``src/utils.py`` imports them at the top for its command line and MNIST
    download (``get_original_cwd``, ``OmegaConf.to_yaml``); the training step and the
    prediction the benchmark times use neither, so empty stand-ins let it import.
    """
    if importlib.util.find_spec("hydra") is None or importlib.util.find_spec("omegaconf") is None:
        hydra = types.ModuleType("hydra")
        hydra_utils = types.ModuleType("hydra.utils")
        hydra_utils.get_original_cwd = os.getcwd  # type: ignore[attr-defined]
        hydra.utils = hydra_utils  # type: ignore[attr-defined]
        omegaconf = types.ModuleType("omegaconf")
        omegaconf.OmegaConf = type("OmegaConf", (), {})  # type: ignore[attr-defined]
        omegaconf.DictConfig = dict  # type: ignore[attr-defined]
        sys.modules.update({"hydra": hydra, "hydra.utils": hydra_utils, "omegaconf": omegaconf})


def loewex_options(
    batch: int, widths: list[int], device: torch.device, variant: str
) -> types.SimpleNamespace:
    """loeweX's ``opt`` as attributes (what hydra builds from its config.yaml)."""
    if len(set(widths)) != 1:
        raise SystemExit(f"loeweX's FF_model has layers of one width, not {widths}")
    model = {
        **LOEWEX_DEFAULTS["model"],
        "hidden_dim": widths[0],
        "num_layers": len(widths),
    }
    if variant == "ff-only":
        model["peer_normalization"] = 0.0
    return types.SimpleNamespace(
        seed=42,
        device=device.type,
        input=types.SimpleNamespace(path="datasets", batch_size=batch),
        model=types.SimpleNamespace(**model),
        training=types.SimpleNamespace(**LOEWEX_DEFAULTS["training"], epochs=100),
    )


def loewex_images(x: Tensor, labels: Tensor | None) -> Tensor:
    """loeweX's ``FF_MNIST`` samples: the image ``(B, 1, 28, 28)`` with its first
    ``CLASSES`` pixels replaced by the label's one-hot code, or by the uniform
    ``1 / CLASSES`` code (its neutral sample) when ``labels`` is ``None``."""
    images = x.reshape(-1, 1, 28, 28).clone()
    if labels is None:
        images[:, 0, 0, :CLASSES] = 1.0 / CLASSES
    else:
        images[:, 0, 0, :CLASSES] = F.one_hot(labels, CLASSES).to(images.dtype)
    return images


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hides what loeweX prints while it builds (the model's repr) from our JSON line."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def loewex(case: str, batch: int, widths: list[int], device: torch.device, variant: str) -> Timed:
    """``case`` with loeweX's ``FF_model`` and its optimizer, as its ``main.py`` runs them.

    ``ffnet-train`` times one iteration of ``main.train``'s loop: ``zero_grad``, the
    forward pass that sums every layer's FF loss (and, as shipped, the peer
    normalisation losses and the side classifier's loss on a neutral-label pass), one
    backward pass, the SGD step, and ``log_results``. Its ``DataLoader`` builds the
    positive, negative and neutral samples in worker processes; here they are built
    beforehand, like FFLib's inputs. ``variant="ff-only"`` switches the extras off: peer
    normalisation weight 0 and no side classifier (the FF step alone).

    ``ffc-infer`` times ``validate_or_test``'s loop body on 10k samples: the neutral-label
    pass and the linear classifier (``forward_downstream_classification_model``).
    """
    if variant not in LOEWEX_VARIANTS:
        raise SystemExit(f"loeweX variant {variant!r}: expected one of {LOEWEX_VARIANTS}")
    import_without_hydra()
    from src import utils  # type: ignore[import-not-found]

    torch.manual_seed(0)
    if case == "ffnet-train":
        opt = loewex_options(batch, widths, device, variant)
        with quiet():
            model, optimizer = utils.get_model_and_optimizer(opt)
        model.to(device)
        if variant == "ff-only":  # the step without the side classifier's pass and loss
            model.forward_downstream_classification_model = (
                lambda inputs, labels, scalar_outputs=None: scalar_outputs
            )
        x, y = data(batch * 16, device)
        batches = []
        for start in range(0, batch * 16, batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            inputs = {
                "pos_images": loewex_images(xb, yb),
                "neg_images": loewex_images(xb, wrong_labels(yb)),
                "neutral_sample": loewex_images(xb, None),
            }
            batches.append((inputs, {"class_labels": yb}))
        following = cycling(16)
        train_results: defaultdict[str, float] = defaultdict(float)

        def step() -> None:
            inputs, labels = utils.preprocess_inputs(opt, *batches[following()])
            optimizer.zero_grad()
            scalar_outputs = model(inputs, labels)
            scalar_outputs["Loss"].backward()
            optimizer.step()
            utils.log_results(train_results, scalar_outputs, len(batches))
            sync(device)

        return Timed(step, warmup=3)
    if case == "ffc-infer":
        opt = loewex_options(PREDICT_CHUNK, widths, device, variant)
        with quiet():
            model, _ = utils.get_model_and_optimizer(opt)
        model.to(device)
        model.eval()
        x, y = data(batch, device)
        chunks = [
            ({"neutral_sample": loewex_images(xb, None)}, {"class_labels": yb})
            for xb, yb in zip(
                torch.split(x, PREDICT_CHUNK), torch.split(y, PREDICT_CHUNK), strict=True
            )
        ]

        @torch.no_grad()
        def predict() -> None:
            test_results: defaultdict[str, float] = defaultdict(float)
            for inputs, labels in chunks:
                inputs, labels = utils.preprocess_inputs(opt, inputs, labels)
                scalar_outputs = model.forward_downstream_classification_model(inputs, labels)
                utils.log_results(test_results, scalar_outputs, len(chunks))
            sync(device)

        return Timed(predict, warmup=1)
    raise SystemExit(f"case {case} has no loeweX counterpart")


# --- the ceiling --------------------------------------------------------------------------


def matmul(case: str, batch: int, widths: list[int], device: torch.device, precision: str) -> Timed:
    """The matmuls of one FFNet training step at these shapes, nothing else: forward and
    weight gradient on ``2 * batch`` rows (positives and negatives) per layer; for
    ``case="matmul-predict"`` the forward products on ``batch`` rows. In bfloat16 for
    ``precision="bf16"``, the ceiling of mixed precision's products."""
    train = case != "matmul-predict"
    rows = 2 * batch if train else batch
    sizes = [FEATURES + CLASSES, *widths]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    tensors = [
        (
            torch.randn(rows, size_in, device=device, dtype=dtype),
            torch.randn(size_out, size_in, device=device, dtype=dtype),
            torch.randn(rows, size_out, device=device, dtype=dtype),
        )
        for size_in, size_out in itertools.pairwise(sizes)
    ]

    def step() -> None:
        for x, w, g in tensors:
            x @ w.t()  # forward
            if train:
                g.t() @ x  # weight gradient
        sync(device)

    return Timed(step, warmup=3)


def measure(timing: Timed, repeats: int, flops: bool, clock: str = "wall") -> dict[str, Any]:
    timed(timing.call, 0, timing.warmup, clock)
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = timed(timing.call, repeats, 0, clock)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result: dict[str, Any] = {
        "median_seconds": statistics.median(times),
        "times": times,
        # what the kernel did for this process per timed call
        "faults_per_call": (after.ru_minflt - before.ru_minflt) / repeats,
        "system_ms_per_call": 1000 * (after.ru_stime - before.ru_stime) / repeats,
    }
    if flops:
        result["flops"] = counted_flops(timing.call)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The measurement ``args`` ask for."""
    device = torch.device(args.device)
    widths = [args.width] * args.layers
    if args.impl == "matmul":
        timing = matmul(args.case, args.batch, widths, device, args.precision)
    elif args.impl == "seed":
        timing = seed(args.case, args.batch, widths, device)
    elif args.impl == "loewex":
        timing = loewex(args.case, args.batch, widths, device, args.variant)
    else:
        from ffcore.precision import autocast

        with autocast(device, args.precision):
            if args.case == "epoch-overhead":
                return epoch_overhead(args.batch, widths, device, args.samples)
            timing = ours(args.case, args.batch, widths, device, args.samples)
            return measure(timing, args.repeats, args.flops, args.clock)
    return measure(timing, args.repeats, args.flops, args.clock)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "seed", "loewex", "matmul"], required=True)
    parser.add_argument("--case", default="ffnet-train")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=2, help="hidden layers of --width")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--peer-path",
        "--seed-path",
        help="seed: where FFLib 0.3.0 was installed with --target; loewex: its checkout",
    )
    parser.add_argument("--variant", default="shipped", help="loewex: shipped or ff-only")
    parser.add_argument("--samples", type=int, default=60_000, help="epoch size (epoch cases)")
    parser.add_argument("--precision", default="fp32", help="ours and matmul: fp32 or bf16")
    parser.add_argument("--flops", action="store_true", help="count one more call's FLOPs")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="what is timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peer_path:
        sys.path.insert(0, args.peer_path)
    result = run(args)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**result, "peak_mib": peak_mib}))


if __name__ == "__main__":
    main()
