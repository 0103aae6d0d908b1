"""ffdebug: TensorBoard traces of FF layers' activations and goodness (a plugin).

``ff train --tensorboard DIR`` traces a run as it trains (:mod:`ffdebug.tracer`);
``ff debug CHECKPOINT --logdir DIR`` traces a saved model on a data set
(:mod:`ffdebug.debug`). Importing this package is cheap: TensorBoard is imported only
when something is traced.
"""

#: Trace at most one batch in this many unless ``--trace-every`` says otherwise...
DEFAULT_TRACE_EVERY = 50
#: ...and at least this many batches per epoch, when an epoch has that many.
TRACE_POINTS_PER_EPOCH = 5
#: The plugin name the tracer is registered under while a traced run trains.
TRACER_NAME = "ffdebug-tracer"
#: The ``ff train`` settings ffdebug declares: the log directory and the tracing period.
LOGDIR = "tensorboard"
TRACE_EVERY = "trace_every"
#: The data splits ``ff debug --split`` traces.
SPLITS = ("test", "val", "train")

__all__ = [
    "DEFAULT_TRACE_EVERY",
    "LOGDIR",
    "SPLITS",
    "TRACER_NAME",
    "TRACE_EVERY",
    "TRACE_POINTS_PER_EPOCH",
    "default_trace_every",
]


def default_trace_every(batches_per_epoch: int) -> int:
    """The tracing interval when ``--trace-every`` is not given: several points per epoch
    on small data sets (``digits``: every 2nd of 11 batches), one in 50 on large ones."""
    return max(1, min(DEFAULT_TRACE_EVERY, batches_per_epoch // TRACE_POINTS_PER_EPOCH))
