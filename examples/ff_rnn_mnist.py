"""FFRNN on MNIST: FFLib 0.3.0's ``examples/ff_rnn_mnist.py``, through FFLib's API.

The same experiment as the original: the flattened image below two recurrent FF layers of
2000 units and the label's one-hot code above them, beta 0.7, 10 frames per training
batch, goodness averaged over test frames 3 to 8, random wrong-label negatives, batches of
128, 10% of the training data held out for validation, 60 epochs, TryAll prediction, seed
42. By default it uses FFLib's current hyperparameters (RMS normalisation, sum-of-squares
goodness with threshold = layer width, Adam 0.003, linear learning-rate cooldown);
``--seed-hyperparameters`` uses 0.3.0's own (L2 normalisation, mean of squares,
threshold 20, Adam 0.02, constant rate).

Test frames are 1-based and inclusive here: ``--test-frames 3:8`` averages frames 3, 4, 5,
6, 7 and 8 after the initial bottom-up pass. (0.3.0's ``K_testlow=3, K_testhigh=8``
counted 0-based frames after ``3``, i.e. frames 5 to 8: pass ``--test-frames 5:8`` for
that.) Unlike 0.3.0, hidden states start at zero, not at random, so predictions are
deterministic.

    python examples/ff_rnn_mnist.py                        # MNIST, downloaded on first use
    python examples/ff_rnn_mnist.py -e 10 -u 0.1           # 10 epochs on 10% of the data
    python examples/ff_rnn_mnist.py --dataset digits -e 1 -u 0.5  # offline, a few seconds

The checkpoint it writes is the same kind ``ff train`` writes: ``ff eval`` re-tests it and
``ff train --resume`` continues it.
"""

from __future__ import annotations

import sys

from example_runner import argument_parser, run_example


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--frames", type=int, default=10, help="frames per training batch (10, 0.3.0's K_train)"
    )
    parser.add_argument(
        "--test-frames",
        default="3:8",
        help="LOW:HIGH, the 1-based inclusive frames whose goodness predicts (3:8)",
    )
    args = parser.parse_args(argv)
    options = {"beta": 0.7, "frames": args.frames, "test_frames": args.test_frames}
    return run_example("ff_rnn", args, "ffrnn", probe="tryall", model_options=options)


if __name__ == "__main__":
    sys.exit(main())
