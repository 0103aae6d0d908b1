"""Speed of FFLib side by side with its peers, with the machine's matmul ceiling.

    python benchmarks/speed.py              # against FFLib 0.3.0, plus the scaling tables
    python benchmarks/speed.py --quick      # 1 round, fewer repeats, no scaling tables
    python benchmarks/speed.py --peer loewex=PATH      # against loeweX/Forward-Forward
    python benchmarks/speed.py --peer before=/tmp/prev --peer fflib-0.3.0
    python benchmarks/speed.py --precisions fp32 --cases ffnet-train ffc-infer

Peers (``--peer``, repeatable; FFLib 0.3.0 alone when none is given):

- ``fflib-0.3.0``: FFLib 0.3.0 from PyPI, installed once into ``--cache`` with
  ``pip install --no-deps --target``;
- ``loewex=PATH``: a checkout of github.com/loeweX/Forward-Forward, the closest public
  reproduction of Hinton's paper. Its ``FF_model`` training iteration runs as shipped
  (``loewex``: peer normalisation and the side linear classifier included) and as the FF
  step alone (``loewex-ff-only``); its prediction (neutral-label pass and linear
  classifier) runs next to FFLib's FF+C prediction;
- ``NAME=PATH``: another FFLib source tree (say ``git worktree add /tmp/prev HEAD~1``),
  timed by the same code as this one in every case and precision: a refactor shows
  "no case slower than before" side by side in one run.

A peer whose path holds no checkout is skipped with a message saying how to get one.
Every measurement runs in a fresh subprocess (``benchmarks/speed_worker.py``); each round
runs every implementation of a case once, in an order rotated from round to round, with
the same inputs, shapes and threads, and so does the matmul ceiling (the step's matrix
products alone, at the case's shapes and precision), so each "% of ceiling" compares
runs minutes apart at most. FFLib runs at each of ``--precisions`` (``bf16``: mixed
precision, against the bfloat16 ceiling); the peers run at fp32.

It prints one JSON line per measurement (case, config, implementation, median seconds,
samples/s, FLOPs per sample counted with torch's ``FlopCounterMode``, GFLOP/s, fraction of
the ceiling, ratio FFLib / peer and each round's own ratio, peak MiB), then one table per
precision.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - FFLib's dependencies bring tomli there
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "speed_worker.py"
#: Where FFLib 0.3.0 and the trees timed are installed, once.
DEFAULT_CACHE = Path.home() / ".cache" / "fflib" / "bench"
FEATURES, CLASSES = 784, 10
SEED_VERSION = "0.3.0"
SEED_NAME = f"fflib-{SEED_VERSION}"
LOEWEX_URL = "https://github.com/loeweX/Forward-Forward"
#: Samples per prediction call in every implementation (the worker's chunks).
PREDICT_CHUNK = 1000
#: Data-set sizes for the epoch-time scaling table (FFNet training, batch 128).
EPOCH_SIZES = (7_500, 15_000, 30_000, 60_000)
PEER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
RESERVED_NAMES = ("ours", "ceiling")


def forward_flops(width: int, layers: int = 2) -> float:
    """FLOPs of one FFNet forward pass for one sample (F in the issue: 11.18M at 2x2000)."""
    flops = 2.0 * (FEATURES + CLASSES) * width
    return flops + 2.0 * width * width * (layers - 1)


# --- peers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """An implementation to compare with: ``kind`` is ``seed`` (FFLib 0.3.0 from PyPI),
    ``loewex`` (a loeweX/Forward-Forward checkout) or ``tree`` (an FFLib source tree)."""

    name: str
    kind: str
    path: Path | None = None


def parse_peer(text: str) -> Peer:
    """``--peer``'s value: ``fflib-0.3.0``, ``loewex=PATH`` or ``NAME=PATH``."""
    if text.strip().lower() in (SEED_NAME, SEED_VERSION, "seed"):
        return Peer(SEED_NAME, "seed")
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not path:
        raise argparse.ArgumentTypeError(
            f"--peer {text!r}: expected {SEED_NAME}, loewex=PATH (a loeweX/Forward-Forward "
            "checkout) or NAME=PATH (an FFLib source tree)"
        )
    if not PEER_NAME.fullmatch(name) or name.lower() in (*RESERVED_NAMES, SEED_NAME):
        raise argparse.ArgumentTypeError(
            f"--peer {text!r}: name {name!r} must be letters, digits, '.' and '-' and not "
            f"one of {', '.join((*RESERVED_NAMES, SEED_NAME))}"
        )
    kind = "loewex" if name.lower().startswith("loewex") else "tree"
    return Peer(name, kind, Path(path).expanduser())


#: For each kind of peer found on disk: what it is, the file that shows it is there, and
#: how to get one (``{path}``: where it was looked for).
CHECKOUTS = {
    "loewex": (
        "loeweX/Forward-Forward checkout",
        "src/ff_model.py",
        f"get one with `git clone {LOEWEX_URL} {{path}}`",
    ),
    "tree": (
        "FFLib source tree",
        "ffcore/__init__.py",
        "check one out with `git worktree add {path} HEAD~1` (or any other commit)",
    ),
}


def missing(peer: Peer) -> str | None:
    """Why ``peer`` cannot run and how to get it, or ``None`` when it can."""
    if peer.kind not in CHECKOUTS:
        return None
    what, marker, how = CHECKOUTS[peer.kind]
    assert peer.path is not None
    if (peer.path / marker).is_file():
        return None
    return f"no {what} at {peer.path} (no {marker}): {how.format(path=peer.path)}"


def install_seed(cache: Path) -> Path:
    """FFLib 0.3.0 in ``cache`` (installed once with pip --target, no dependencies)."""
    target = cache / SEED_NAME
    if not (target / "fflib").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                f"fflib=={SEED_VERSION}",
            ],
            check=True,
        )
    return target


def available_peers(peers: Sequence[Peer], cache: Path) -> list[Peer]:
    """The peers that can run, FFLib 0.3.0 installed; the others skipped with a message
    (on stderr, and as a ``peer-skipped`` JSON line)."""
    ready = []
    for peer in peers:
        reason = missing(peer)
        if reason is None and peer.kind == "seed":
            try:
                peer = Peer(peer.name, peer.kind, install_seed(cache))
            except subprocess.CalledProcessError as error:
                reason = f"`pip install fflib=={SEED_VERSION}` failed ({error})"
        if reason is None:
            ready.append(peer)
            continue
        print(f"skipping peer {peer.name}: {reason}", file=sys.stderr, flush=True)
        emit({"name": "peer-skipped", "peer": peer.name, "reason": reason})
    return ready


@functools.cache
def tree_environment(root: Path, cache: Path) -> tuple[tuple[str, str], ...]:
    """Environment variables under which a worker imports FFLib from source tree ``root``
    with the built-in plugins that tree's own ``pyproject.toml`` declares.

    The installed ``fflib`` metadata names the plugin modules of whichever tree was
    installed; a tree whose modules differ (a refactor, the commit before one) would load
    the wrong list. So each tree gets an ``fflib`` dist-info of its own, made from its
    ``pyproject.toml``, placed on ``PYTHONPATH`` before the installed one (the first
    distribution of a name is the one ``importlib.metadata`` reads).
    """
    project = tomllib.loads((root / "pyproject.toml").read_text())
    metadata = project.get("project", {})
    version = str(metadata.get("version", "0"))
    points = metadata.get("entry-points", {}).get("fflib", {})
    package_dirs = project.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    folder = cache / "trees" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    dist_info = folder / f"fflib-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fflib\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text(
        "[fflib]\n" + "".join(f"{name} = {module}\n" for name, module in points.items())
    )
    paths = [root]
    for package_dir in package_dirs.values():  # e.g. ffplugins = "plugins/ffplugins"
        parent = (root / package_dir).parent
        if parent not in paths:
            paths.append(parent)
    paths.append(folder)
    return (
        ("PYTHONPATH", os.pathsep.join(str(path) for path in paths)),
        ("FFLIB_BUILTIN_PLUGINS_ONLY", "1"),  # third-party plugins stay out of the timing
    )


# --- workers ------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A measurement's subprocess failed."""


def worker(
    impl: str,
    case: str,
    batch: int,
    width: int,
    args: argparse.Namespace,
    *,
    layers: int = 2,
    precision: str = "fp32",
    peer_path: Path | None = None,
    tree: Path | None = None,
    variant: str | None = None,
    repeats: int | None = None,
    samples: int | None = None,
    flops: bool = False,
) -> dict[str, Any]:
    """One measurement in a fresh process: ``impl`` on ``case``; ``tree`` is the FFLib
    source tree ``ours`` imports (this one by default)."""
    command = [
        sys.executable,
        str(WORKER),
        "--impl",
        impl,
        "--case",
        case,
        "--batch",
        str(batch),
        "--width",
        str(width),
        "--layers",
        str(layers),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--repeats",
        str(repeats or args.repeats),
        "--precision",
        precision,
        "--clock",
        args.clock,
    ]
    if peer_path is not None:
        command += ["--peer-path", str(peer_path)]
    if variant is not None:
        command += ["--variant", variant]
    if samples is not None:
        command += ["--samples", str(samples)]
    if flops:
        command.append("--flops")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if impl == "ours":
        env.update(tree_environment(tree or ROOT, args.cache))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise WorkerError(f"{impl} {case} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- cases and contenders -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One comparison: ``samples`` per timed call; ``ceiling`` names the matmul ceiling
    to compare with (``matmul``: a training step's products on 2x``batch`` rows,
    ``matmul-predict``: forward products on prediction chunks, ``""``: none); ``peers``
    the peer kinds with a counterpart (FFLib trees have every case)."""

    name: str
    batch: int
    width: int = 2000
    layers: int = 2
    samples: int = 0
    ceiling: str = ""
    peers: tuple[str, ...] = ("seed",)

    @property
    def shape(self) -> str:
        return f"{self.layers}x{self.width}"

    def config(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "layers": self.layers,
            "width": self.width,
            "samples": self.samples,
            "threads": args.threads,
            "device": args.device,
            "clock": args.clock,
        }


def cases(width: int) -> list[Case]:
    """Every case; ``width`` is the 2-layer cases' width. 3x1000 at batch 100 is loeweX's
    default configuration."""
    train = ("seed", "loewex")
    return [
        Case("ffnet-train", 128, width, 2, 128, "matmul", train),
        Case("ffnet-train", 512, width, 2, 512, "matmul", train),
        Case("ffnet-train", 100, 1000, 3, 100, "matmul", train),
        Case("ffnet-tryall", 10_000, width, 2, 10_000, "matmul-predict"),
        Case("ffc-train", 128, width, 2, 128, "matmul"),
        Case("ffc-infer", 10_000, width, 2, 10_000, "matmul-predict", ("seed", "loewex")),
        Case("ffrnn-train", 128, width, 2, 128),
        Case("ffrnn-tryall", 1000, width, 2, 1000),
    ]


def suffix(precision: str) -> str:
    """What the result keys of a run at ``precision`` end with: ``ours_bf16``,
    ``ceiling_bf16`` (nothing for fp32: ``ours``, ``ceiling``)."""
    return "" if precision == "fp32" else f"_{precision}"


@dataclass(frozen=True)
class Contender:
    """One implementation of a case: ``key`` names its results; ``impl`` is the worker's
    ``--impl``; peers other than FFLib trees run at fp32 only (``fixed``)."""

    key: str
    impl: str
    precision: str = "fp32"
    peer_path: Path | None = None
    tree: Path | None = None
    variant: str | None = None
    fixed: bool = False

    @property
    def is_ours(self) -> bool:
        return self.impl == "ours" and self.tree is None

    @property
    def is_ceiling(self) -> bool:
        return self.impl == "matmul"

    def in_table(self, precision: str) -> bool:
        """Whether the table of FFLib at ``precision`` shows this contender."""
        return self.precision == precision or self.fixed


def contenders(case: Case, peers: Sequence[Peer], precisions: Sequence[str]) -> list[Contender]:
    """Who runs ``case``: FFLib (and each FFLib tree) at every precision, the other peers
    that have a counterpart, and the ceiling at every precision when the case has one."""
    runs: list[Contender] = []
    for precision in precisions:
        end = suffix(precision)
        runs.append(Contender(f"ours{end}", "ours", precision))
        runs += [
            Contender(f"{peer.name}{end}", "ours", precision, tree=peer.path)
            for peer in peers
            if peer.kind == "tree"
        ]
    for peer in peers:
        if peer.kind not in case.peers:
            continue
        if peer.kind == "seed":
            runs.append(Contender(peer.name, "seed", peer_path=peer.path, fixed=True))
        if peer.kind == "loewex":
            runs.append(
                Contender(peer.name, "loewex", peer_path=peer.path, variant="shipped", fixed=True)
            )
            if case.name == "ffnet-train":
                runs.append(
                    Contender(
                        f"{peer.name}-ff-only",
                        "loewex",
                        peer_path=peer.path,
                        variant="ff-only",
                        fixed=True,
                    )
                )
    if case.ceiling:
        runs += [Contender(f"ceiling{suffix(p)}", "matmul", p) for p in precisions]
    return runs


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


@dataclass
class Measured:
    """A contender's runs of a case, by round."""

    rounds: dict[int, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    @property
    def flops(self) -> int | None:
        return next((r["flops"] for r in self.rounds.values() if "flops" in r), None)


def run_case(
    case: Case, runs: Sequence[Contender], args: argparse.Namespace
) -> dict[str, Measured]:
    """Every contender once a round, the order rotated each round so that none always
    runs first; FLOPs counted in each one's first run. A peer that fails is reported and
    left out of the later rounds; FFLib or the ceiling failing stops the benchmark."""
    measured = {contender.key: Measured() for contender in runs}
    slow = case.name.startswith("ffrnn") or case.samples >= 1000
    for round_index in range(args.rounds):
        shift = round_index % len(runs)
        for contender in [*runs[shift:], *runs[:shift]]:
            record = measured[contender.key]
            if record.error is not None:
                continue
            ceiling_rows = case.ceiling == "matmul-predict" and contender.is_ceiling
            try:
                record.rounds[round_index] = worker(
                    contender.impl,
                    case.ceiling if contender.is_ceiling else case.name,
                    PREDICT_CHUNK if ceiling_rows else case.batch,
                    case.width,
                    args,
                    layers=case.layers,
                    precision=contender.precision,
                    peer_path=contender.peer_path,
                    tree=contender.tree,
                    variant=contender.variant,
                    repeats=3 if slow and not contender.is_ceiling else None,
                    flops=record.flops is None,
                )
            except WorkerError as error:
                if contender.is_ours or contender.is_ceiling:
                    raise
                record.error = str(error)
                emit(
                    {
                        "name": case.name,
                        "config": case.config(args),
                        "impl": contender.key,
                        "error": record.error,
                    }
                )
    return measured


def summarise(
    case: Case,
    runs: Sequence[Contender],
    measured: dict[str, Measured],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The case's results per contender: median seconds over the rounds, samples/s,
    counted FLOPs per sample, GFLOP/s and its fraction of the ceiling at the contender's
    precision (of the medians, and of each round), and, against FFLib at each precision
    whose table shows the contender, the ratio FFLib / contender (likewise)."""
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, dict[int, float]] = {}
    gflops: dict[str, dict[int, float]] = {}
    for contender in runs:
        record = measured[contender.key]
        if not record.rounds:
            continue
        seconds[contender.key] = {i: run["median_seconds"] for i, run in record.rounds.items()}
        median = statistics.median(seconds[contender.key].values())
        result: dict[str, Any] = {
            "impl": contender.key,
            "precision": contender.precision,
            "median_seconds": median,
            "rounds_seconds": list(seconds[contender.key].values()),
        }
        if not contender.is_ceiling:
            result["samples_per_s"] = case.samples / median
            result["peak_mib"] = max(run["peak_mib"] for run in record.rounds.values())
        if contender.variant is not None:
            result["variant"] = contender.variant
        if record.flops:
            if not contender.is_ceiling:
                result["flops_per_sample"] = record.flops / case.samples
            result["gflops"] = record.flops / median / 1e9
            gflops[contender.key] = {
                i: record.flops / s / 1e9 for i, s in seconds[contender.key].items()
            }
        results[contender.key] = result
    for contender in runs:
        result = results.get(contender.key, {})
        if not result or contender.is_ceiling:
            continue
        ceiling = f"ceiling{suffix(contender.precision)}"
        if contender.key in gflops and ceiling in gflops:
            result["ceiling_gflops"] = results[ceiling]["gflops"]
            result["ceiling_fraction"] = result["gflops"] / results[ceiling]["gflops"]
            result["ceiling_fraction_rounds"] = paired(gflops[contender.key], gflops[ceiling])
        if contender.is_ours:
            continue
        for precision in args.precisions:
            ours = f"ours{suffix(precision)}"
            if ours not in results or not contender.in_table(precision):
                continue
            end = suffix(precision)
            # same samples per call: FFLib's samples/s over the contender's is the
            # contender's seconds over FFLib's
            result[f"ratio{end}"] = results[ours]["samples_per_s"] / result["samples_per_s"]
            result[f"ratio{end}_rounds"] = paired(seconds[contender.key], seconds[ours])
    return {"name": case.name, "config": case.config(args), "results": results}


def paired(numerators: dict[int, float], denominators: dict[int, float]) -> list[float]:
    """``numerators[i] / denominators[i]`` for each round ``i`` both have."""
    return [numerators[i] / denominators[i] for i in numerators if i in denominators]


def compare(args: argparse.Namespace, peers: Sequence[Peer]) -> list[dict[str, Any]]:
    """Every selected case against the ready ``peers``; one JSON line per result."""
    rows = []
    for case in cases(args.width):
        if args.cases and case.name not in args.cases:
            continue
        runs = contenders(case, peers, args.precisions)
        row = summarise(case, runs, run_case(case, runs, args), args)
        for result in row["results"].values():
            emit({"name": case.name, "config": row["config"], **result})
        rows.append(row)
    return rows


def epoch_outside_math(args: argparse.Namespace) -> None:
    overhead = worker("ours", "epoch-overhead", 128, args.width, args)
    emit(
        {
            "name": "epoch-outside-math",
            "config": {"samples": 60_000, "batch": 128},
            "outside_fraction": overhead["outside_fraction"],
            "epoch_seconds": overhead["epoch_seconds"],
        }
    )


def scaling(args: argparse.Namespace) -> list[dict[str, Any]]:
    """FFLib's FFNet training against batch size and width, and epoch time against
    data-set size (fp32); each record is emitted as it comes and returned."""
    records: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        emit(entry)
        records.append(entry)

    for batch in (32, 64, 128, 256, 512, 1024):
        run = worker("ours", "ffnet-train", batch, args.width, args)
        record(
            {
                "name": "scaling-batch",
                "config": {"batch": batch, "width": args.width},
                "median_seconds": run["median_seconds"],
                "samples_per_s": batch / run["median_seconds"],
                "gflops": 4 * forward_flops(args.width) * batch / run["median_seconds"] / 1e9,
            }
        )
    for width in (500, 1000, 2000, 4000):
        run = worker("ours", "ffnet-train", 128, width, args, repeats=8)
        record(
            {
                "name": "scaling-width",
                "config": {"batch": 128, "width": width},
                "median_seconds": run["median_seconds"],
                "samples_per_s": 128 / run["median_seconds"],
                "gflops": 4 * forward_flops(width) * 128 / run["median_seconds"] / 1e9,
            }
        )
    for samples in EPOCH_SIZES:  # one epoch through the trainer's batching: linear in size?
        run = worker("ours", "epoch-overhead", 128, args.width, args, samples=samples)
        record(
            {
                "name": "scaling-epoch",
                "config": {"samples": samples, "batch": 128, "width": args.width},
                "epoch_seconds": run["epoch_seconds"],
                "seconds_per_10k": run["epoch_seconds"] / samples * 10_000,
            }
        )
    return records


# --- tables -------------------------------------------------------------------------------

TABLE_COLUMNS = (
    ("case", "<12"),
    ("layers", ">6"),
    ("batch", ">6"),
    ("implementation", "<22"),
    ("samples/s", ">9"),
    ("ratio", ">6"),
    ("rounds", ">11"),
    ("MFLOP/smp", ">9"),
    ("GFLOP/s", ">7"),
    ("% ceil", ">6"),
    ("rounds", ">7"),
    ("peak MiB", ">8"),
)


def spread(values: Sequence[float], scale: float = 1.0, spec: str = ".2f") -> str:
    """``lowest-highest`` of ``values`` (times ``scale``), ``-`` when there are none."""
    if not values:
        return "-"
    return f"{format(min(values) * scale, spec)}-{format(max(values) * scale, spec)}"


def table_lines(rows: Sequence[dict[str, Any]], precision: str) -> list[str]:
    """The comparison table of FFLib at ``precision``: one line per implementation of each
    case; ratio = FFLib's samples/s over that implementation's."""
    end = suffix(precision)
    header = "  ".join(format(title, spec) for title, spec in TABLE_COLUMNS)
    lines = [header]
    for row in rows:
        config = row["config"]
        first = True
        for key, result in row["results"].items():
            if not shown_in(key, result, precision):
                continue
            label = key
            if result["precision"] != precision:
                label += f" ({result['precision']})"
            ratio = result.get(f"ratio{end}")
            fraction = result.get("ceiling_fraction")
            flops = result.get("flops_per_sample")
            is_ceiling = key.startswith("ceiling")
            cells = (
                row["name"] if first else "",
                f"{config['layers']}x{config['width']}" if first else "",
                f"{config['batch']}" if first else "",
                label,
                "-" if is_ceiling else f"{result['samples_per_s']:,.0f}",
                "-" if ratio is None else f"{ratio:.2f}",
                spread(result.get(f"ratio{end}_rounds", [])),
                "-" if flops is None or is_ceiling else f"{flops / 1e6:.2f}",
                f"{result['gflops']:.0f}" if "gflops" in result else "-",
                "-" if fraction is None else f"{100 * fraction:.0f}",
                spread(result.get("ceiling_fraction_rounds", []), 100, ".0f"),
                "-" if is_ceiling else f"{result['peak_mib']:,.0f}",
            )
            lines.append(
                "  ".join(
                    format(cell, spec) for cell, (_, spec) in zip(cells, TABLE_COLUMNS, strict=True)
                )
            )
            first = False
    return lines


def shown_in(key: str, result: dict[str, Any], precision: str) -> bool:
    """Whether the table of FFLib at ``precision`` shows the result under ``key``: runs
    at that precision, and peers that only run at fp32."""
    if result["precision"] == precision:
        return True
    return f"ratio{suffix(precision)}" in result


def print_table(rows: Sequence[dict[str, Any]], precisions: Sequence[str]) -> None:
    """One table per precision of FFLib, against every peer of each case."""
    for precision in precisions:
        print(
            f"\nFFLib (ours) at {precision} against each implementation. ratio: FFLib's "
            "samples/s over theirs (above 1: FFLib is faster);\nrounds: the lowest and "
            "highest of the rounds' own ratios; MFLOP/smp: counted with FlopCounterMode;\n"
            f"% ceil: GFLOP/s over the matmul ceiling at the case's shapes ({precision}; fp32 "
            "for fp32 peers), timed in the same rounds, and its rounds' range"
        )
        for line in table_lines(rows, precision):
            print(line)


#: The scaling tables: record name, the column's config key, and the rows shown
#: (label, record key, format).
SCALING_TABLES = (
    (
        "scaling-batch",
        "batch",
        (("samples/s", "samples_per_s", ",.0f"), ("GFLOP/s", "gflops", ".0f")),
    ),
    (
        "scaling-width",
        "width",
        (("samples/s", "samples_per_s", ",.0f"), ("GFLOP/s", "gflops", ".0f")),
    ),
    (
        "scaling-epoch",
        "samples",
        (("epoch s", "epoch_seconds", ".2f"), ("s per 10k", "seconds_per_10k", ".2f")),
    ),
)


def print_scaling(records: list[dict[str, Any]]) -> None:
    """The scaling records as three small tables (FFLib at fp32, FFNet training)."""
    for name, column, rows in SCALING_TABLES:
        entries = [r for r in records if r["name"] == name]
        if not entries:
            continue
        print(f"\nFFLib at fp32, FFNet training, against {column}")
        print(f"{column:<11}" + "".join(f"{r['config'][column]:>9,}" for r in entries))
        for label, key, spec in rows:
            print(f"{label:<11}" + "".join(f"{format(r[key], spec):>9}" for r in entries))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=2000, help="the 2-layer cases' width")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "bf16"],
        default=["fp32", "bf16"],
        help="FFLib's precisions to run (the peers other than FFLib trees run at fp32)",
    )
    parser.add_argument(
        "--peer",
        dest="peers",
        action="append",
        type=parse_peer,
        metavar="PEER",
        help=f"{SEED_NAME}, loewex=PATH (a {LOEWEX_URL} checkout) or NAME=PATH (an FFLib "
        f"source tree); repeatable; default: {SEED_NAME}",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=sorted({case.name for case in cases(2000)}),
        help="only these cases, and no epoch and scaling measurements (default: all)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time, or the process's CPU time: with --threads 1, it is what a machine "
        "shared with other work disturbs least (with more threads it also counts their waits)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, no scaling tables")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.quick:
        args.rounds, args.repeats = 1, 8
    requested: list[Peer] = args.peers or [Peer(SEED_NAME, "seed")]
    names = [peer.name for peer in requested]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SystemExit(f"--peer: the names {', '.join(duplicates)} are given more than once")
    rows = compare(args, available_peers(requested, args.cache))
    scaled: list[dict[str, Any]] = []
    if not args.cases:  # a selection of cases is a comparison only
        epoch_outside_math(args)
        scaled = [] if args.quick else scaling(args)
    print_table(rows, args.precisions)
    print_scaling(scaled)


if __name__ == "__main__":
    main()
