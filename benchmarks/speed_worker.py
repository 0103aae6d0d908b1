"""One speed measurement in a fresh process: FFLib (``ours``) or FFLib 0.3.0 (``seed``).

Run by ``benchmarks/speed.py``, which alternates the two libraries; prints one JSON line.
Every case uses the same synthetic standardised inputs (784 features, 10 classes) and the
same thread count, so only the libraries differ.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

FEATURES, CLASSES = 784, 10


def timed(step: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Seconds per call of ``step``, ``repeats`` times after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return times


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


# --- FFLib (this repository) -------------------------------------------------------------


def ours(
    case: str,
    batch: int,
    width: int,
    device: torch.device,
    repeats: int,
    samples: int = 60_000,
    precision: str = "fp32",
) -> list[float]:
    """Seconds per repeat of ``case`` with FFLib, at ``precision`` (``fp32`` or ``bf16``)."""
    from ffcore.precision import autocast

    with autocast(device, precision):
        return _ours(case, batch, width, device, repeats, samples)


def _ours(
    case: str, batch: int, width: int, device: torch.device, repeats: int, samples: int
) -> list[float]:
    import ffcore
    from ffcore.data import iterate_batches
    from ffcore.interfaces import Batch, Split

    torch.manual_seed(0)
    negatives = ffcore.create_negatives("random")
    if case in ("ffnet-train", "ffc-train", "ffrnn-train"):
        name = case.removesuffix("-train")
        extra: dict[str, Any] = {"schedule": "joint"} if name == "ffc" else {}
        model = ffcore.create_model(name, (FEATURES,), CLASSES, layers=[width, width], **extra)
        model.to(device)
        model.on_epoch_start(0, 2)
        blocks = 16 if name == "ffnet" else 4  # batches cycled through
        x, y = data(batch * blocks, device)
        position = [0]

        def step() -> None:
            start = (position[0] % blocks) * batch
            position[0] += 1
            model.train_batch(Batch(x[start : start + batch], y[start : start + batch]), negatives)
            sync(device)

        return timed(step, repeats, warmup=3 if name == "ffnet" else 2)
    if case in ("ffnet-tryall", "ffc-infer", "ffrnn-tryall"):
        name = {"ffnet-tryall": "ffnet", "ffc-infer": "ffc", "ffrnn-tryall": "ffrnn"}[case]
        options: dict[str, Any] = {"layers": [width, width]}
        model = ffcore.create_model(name, (FEATURES,), CLASSES, **options)
        model.to(device)
        probe = ffcore.create_probe("classifier" if name == "ffc" else "tryall")
        x, _ = data(batch, device)

        @torch.no_grad()
        def predict() -> None:
            for chunk in torch.split(x, 1000):
                probe.predict(model, chunk)
            sync(device)

        return timed(predict, repeats, warmup=1)
    if case == "epoch-overhead":
        # One epoch (--samples, MNIST-sized by default) through the trainer loop pieces: share of
        # the epoch spent outside model.train_batch (data, Python, bookkeeping).
        model = ffcore.create_model("ffnet", (FEATURES,), CLASSES, layers=[width, width])
        model.to(device)
        x, y = data(samples, device)
        split = Split(x, y)
        inside = [0.0, 0.0]  # seconds in train_batch, batches trained
        original = model.train_batch

        def counted(xb: Tensor, yb: Tensor, sampler: Any) -> Tensor:
            started = time.perf_counter()
            loss = original(Batch(xb, yb), sampler)
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
        return [1.0 - inside[0] / wall, wall, inside[1]]
    raise SystemExit(f"unknown case {case}")


# --- FFLib 0.3.0 -------------------------------------------------------------------------


def seed(case: str, batch: int, width: int, device: torch.device, repeats: int) -> list[float]:
    from fflib.nn.ff_linear import FFLinear  # type: ignore[import-not-found]
    from fflib.nn.ff_net import FFNet  # type: ignore[import-not-found]
    from fflib.probes.one_hot import TryAllClasses  # type: ignore[import-not-found]

    torch.manual_seed(0)

    def dense_layers() -> list[Any]:
        return [
            FFLinear(FEATURES + CLASSES, width, 20.0, 0.02, device=device),
            FFLinear(width, width, 20.0, 0.02, device=device),
        ]

    def combine(x: Tensor, y: Tensor) -> Tensor:
        return torch.cat((x, F.one_hot(y, CLASSES).float()), 1)

    if case == "ffnet-train":
        net = FFNet(dense_layers(), device)
        x, y = data(batch * 16, device)
        position = [0]

        def step() -> None:
            start = (position[0] % 16) * batch
            position[0] += 1
            xb, yb = x[start : start + batch], y[start : start + batch]
            net.run_train_combined(combine(xb, yb), combine(xb, wrong_labels(yb)))
            sync(device)

        return timed(step, repeats, warmup=3)
    if case == "ffnet-tryall":
        net = FFNet(dense_layers(), device)
        probe = TryAllClasses(lambda xb, yb: net(torch.cat((xb, yb), 1)), CLASSES)
        x, _ = data(batch, device)

        @torch.no_grad()
        def predict() -> None:
            for chunk in torch.split(x, 1000):
                probe.predict(chunk)
            sync(device)

        return timed(predict, repeats, warmup=1)
    if case in ("ffc-train", "ffc-infer"):
        from fflib.nn.ffc import FFC  # type: ignore[import-not-found]

        ffc = FFC(dense_layers(), 1e-4, CLASSES, device)
        if case == "ffc-infer":
            x, _ = data(batch, device)

            @torch.no_grad()
            def infer() -> None:
                for chunk in torch.split(x, 1000):
                    ffc(torch.cat((chunk, torch.zeros(chunk.shape[0], CLASSES)), 1))
                sync(device)

            return timed(infer, repeats, warmup=1)
        x, y = data(batch * 4, device)
        position = [0]

        def ffc_step() -> None:  # an FF step and a classifier step, like our joint schedule
            start = (position[0] % 4) * batch
            position[0] += 1
            xb, yb = x[start : start + batch], y[start : start + batch]
            ffc.run_train_combined(combine(xb, yb), combine(xb, wrong_labels(yb)))
            neutral = torch.cat((xb, torch.zeros(xb.shape[0], CLASSES)), 1)
            ffc.train_classifier(neutral, F.one_hot(yb, CLASSES).float())
            sync(device)

        return timed(ffc_step, repeats, warmup=2)
    if case in ("ffrnn-train", "ffrnn-tryall"):
        from fflib.nn.ff_rnn import FFRNN  # type: ignore[import-not-found]

        rnn = FFRNN.from_dimensions(
            [FEATURES, width, width, CLASSES],
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

            @torch.no_grad()
            def rnn_predict() -> None:
                for chunk in torch.split(x, 1000):
                    probe.predict(chunk)
                sync(device)

            return timed(rnn_predict, repeats, warmup=1)
        x, y = data(batch * 4, device)
        position = [0]

        def rnn_step() -> None:
            start = (position[0] % 4) * batch
            position[0] += 1
            xb, yb = x[start : start + batch], y[start : start + batch]
            yw = wrong_labels(yb)
            rnn.run_train(xb, F.one_hot(yb, CLASSES).float(), xb, F.one_hot(yw, CLASSES).float())
            sync(device)

        return timed(rnn_step, repeats, warmup=2)
    raise SystemExit(f"unknown case {case} for FFLib 0.3.0")


# --- the ceiling --------------------------------------------------------------------------


def matmul(
    batch: int, width: int, device: torch.device, repeats: int, precision: str = "fp32"
) -> list[float]:
    """The matmuls of one FFNet training step at these shapes, nothing else (in bfloat16
    for ``precision="bf16"``, the ceiling of mixed precision's products)."""
    rows = 2 * batch  # positive and negative rows
    shapes = [(FEATURES + CLASSES, width), (width, width)]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    tensors = [
        (
            torch.randn(rows, i, device=device, dtype=dtype),
            torch.randn(o, i, device=device, dtype=dtype),
            torch.randn(rows, o, device=device, dtype=dtype),
        )
        for i, o in shapes
    ]

    def step() -> None:
        for x, w, g in tensors:
            x @ w.t()  # forward
            g.t() @ x  # weight gradient
        sync(device)

    return timed(step, repeats, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "seed", "matmul"], required=True)
    parser.add_argument("--case", default="ffnet-train")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed-path", help="where FFLib 0.3.0 was installed with --target")
    parser.add_argument("--samples", type=int, default=60_000, help="epoch size (epoch cases)")
    parser.add_argument("--precision", default="fp32", help="ours and matmul: fp32 or bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.seed_path:
        sys.path.insert(0, args.seed_path)
    if args.impl == "matmul":
        times = matmul(args.batch, args.width, device, args.repeats, args.precision)
    elif args.impl == "ours":
        times = ours(
            args.case, args.batch, args.width, device, args.repeats, args.samples, args.precision
        )
    else:
        times = seed(args.case, args.batch, args.width, device, args.repeats)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, Any]
    if args.case == "epoch-overhead" and args.impl == "ours":
        result = {"outside_fraction": times[0], "epoch_seconds": times[1], "batches": times[2]}
    else:
        result = {"median_seconds": statistics.median(times), "times": times}
    print(json.dumps({**result, "peak_mib": peak_mib}))


if __name__ == "__main__":
    main()
