"""ffdebug: TensorBoard traces of FF layers' activations and goodness (a plugin).

``ff train --tensorboard DIR`` traces a run as it trains (:mod:`ffdebug.tracer`);
``ff debug CHECKPOINT --logdir DIR`` traces a saved model on a data set
(:mod:`ffdebug.debug`). Importing this package is cheap: TensorBoard is imported only
when something is traced.
"""

#: Trace one batch in this many unless ``--trace-every`` says otherwise.
DEFAULT_TRACE_EVERY = 50
#: The plugin name the tracer is registered under while a traced run trains.
TRACER_NAME = "ffdebug-tracer"
#: The ``ff train`` settings ffdebug declares: the log directory and the tracing period.
LOGDIR = "tensorboard"
TRACE_EVERY = "trace_every"
#: The data splits ``ff debug --split`` traces.
SPLITS = ("test", "val", "train")

__all__ = ["DEFAULT_TRACE_EVERY", "LOGDIR", "SPLITS", "TRACER_NAME", "TRACE_EVERY"]
