"""The backprop baseline on MNIST: FFLib 0.3.0's ``examples/bp_mnist.py``, via FFLib's API.

An MLP of the same widths as the FF examples (two hidden layers of 2000 ReLU units and a
linear read-out), trained end to end with cross-entropy and Adam, so every FF result can
be printed next to its backprop twin.

    python examples/bp_mnist.py                           # MNIST, downloaded on first use
    python examples/bp_mnist.py -e 10 -u 0.1              # 10 epochs on 10% of the data
    python examples/bp_mnist.py --dataset digits -e 2     # offline, a few seconds
"""

from __future__ import annotations

import sys

from example_runner import argument_parser, run_example


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (0.001)")
    args = parser.parse_args(argv)
    if args.seed_hyperparameters:
        parser.error("--seed-hyperparameters is for FF networks; bp has no FF settings")
    return run_example("bp", args, "bp", probe="classifier", lr=args.lr)


if __name__ == "__main__":
    sys.exit(main())
