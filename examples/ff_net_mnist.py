"""FFNet on MNIST: FFLib 0.3.0's ``examples/ff_net_mnist.py``, through FFLib's API.

The same experiment as the original: two fully connected FF layers of 2000 units, the
label one-hot appended to the flattened image, random wrong-label negatives, batches of
128, 10% of the training data held out for validation, 60 epochs, TryAll prediction,
seed 42. By default it uses FFLib's current hyperparameters (RMS input normalisation,
sum-of-squares goodness with threshold = layer width, Adam 0.003, linear learning-rate
cooldown); ``--seed-hyperparameters`` uses 0.3.0's own (L2 normalisation, mean of
squares, threshold 20, Adam 0.02, constant rate), which learn much more slowly.

    python examples/ff_net_mnist.py                      # MNIST, downloaded on first use
    python examples/ff_net_mnist.py -e 10 -u 0.1         # 10 epochs on 10% of the data
    python examples/ff_net_mnist.py --dataset digits -e 2  # offline, a few seconds

The checkpoint it writes is the same kind ``ff train`` writes: ``ff eval`` re-tests it and
``ff train --resume`` continues it. Ctrl-C stops after the current batch and saves it.
"""

from __future__ import annotations

import sys

from example_runner import argument_parser, run_example


def main(argv: list[str] | None = None) -> int:
    args = argument_parser(__doc__.splitlines()[0] if __doc__ else None).parse_args(argv)
    return run_example("ff_net", args, "ffnet", probe="tryall")


if __name__ == "__main__":
    sys.exit(main())
