"""FF+C on MNIST: FFLib 0.3.0's ``examples/ff_c_mnist.py``, through FFLib's API.

The same experiment as the original: two fully connected FF layers of 2000 units trained
as in FFNet, then a linear classifier on the concatenated activations of both layers for
the image with a neutral (all-zero) label, trained with cross-entropy: the seed's two
phases, half the epochs each (``--schedule joint`` trains both every batch). Prediction is
one forward pass through the classifier; no TryAll. Unlike 0.3.0, the logits are not
passed through a ReLU before the argmax.

    python examples/ff_c_mnist.py                         # MNIST, downloaded on first use
    python examples/ff_c_mnist.py -e 10 -u 0.1            # 10 epochs on 10% of the data
    python examples/ff_c_mnist.py --dataset digits -e 2   # offline, a few seconds

The checkpoint it writes is the same kind ``ff train`` writes: ``ff eval`` re-tests it and
``ff train --resume`` continues it.
"""

from __future__ import annotations

import sys

from example_runner import argument_parser, run_example


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--schedule", choices=["two-phase", "joint"], default="two-phase", help="(two-phase)"
    )
    parser.add_argument(
        "--classifier-lr", type=float, default=1e-3, help="classifier learning rate (0.001)"
    )
    args = parser.parse_args(argv)
    options = {"schedule": args.schedule, "classifier_lr": args.classifier_lr}
    return run_example("ff_c", args, "ffc", probe="classifier", model_options=options)


if __name__ == "__main__":
    sys.exit(main())
