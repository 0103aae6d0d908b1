"""``ff debug CHECKPOINT``: the command line of :func:`ffdebug.debug.trace_checkpoint`.

Kept apart from the tracing code, which imports torch and TensorBoard, so that adding the
command to ``ff`` (``ff --help``, shell completion) imports neither.
"""

from __future__ import annotations

import click

from ffcore.cli.completion import complete_component
from ffcore.cli.data_options import checkpoint_data_options
from ffdebug import SPLITS


@click.command("debug")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option(
    "--logdir",
    "--tensorboard",
    "logdir",
    required=True,
    type=click.Path(file_okay=False),
    help="TensorBoard log directory to write to.",
)
@checkpoint_data_options("trace on")
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="test",
    show_default=True,
    help="Which split to sample.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Samples to trace (and to show in the embedding projector).",
)
@click.option(
    "--negatives",
    shell_complete=complete_component("negatives"),
    help="Negative sampler (default: the one it was trained with).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, mps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample and negatives seed.")
@click.option(
    "--step",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Global step to file the traces under (to line them up with a training run).",
)
def debug_command(
    checkpoint: str,
    logdir: str,
    dataset: str | None,
    data_root: str | None,
    download: bool | None,
    split: str,
    samples: int,
    negatives: str | None,
    device: str,
    seed: int,
    step: int,
) -> None:
    """Trace a saved model into TensorBoard, without training.

    Traces the model in CHECKPOINT on a sample of a data split: per-layer activation,
    goodness and weight histograms and scalars, a per-class mean-goodness heat map (layers
    x labels) and an embedding projector of each layer's activations, labelled by class.
    View with `tensorboard --logdir LOGDIR`.
    """
    from ffcore.cli.main import prepare_to_compute
    from ffdebug.debug import trace_checkpoint

    prepare_to_compute()
    report = trace_checkpoint(
        checkpoint,
        logdir,
        dataset=dataset,
        data_root=data_root,
        download=download,
        split=split,
        samples=samples,
        negatives=negatives,
        device=device,
        seed=seed,
        step=step,
    )
    epoch = f" (epoch {report.epoch})" if report.epoch is not None else ""
    parts = [f"{report.layers} layers traced"]
    parts += [f"image {name}" for name in report.images]
    if report.embeddings:
        parts.append(f"{report.embeddings} embeddings")
    click.echo(
        f"{report.model}{epoch} on {report.dataset} {report.split} ({report.samples} samples): "
        f"{', '.join(parts)}; written to {report.logdir}"
    )
    click.echo(f"view with: tensorboard --logdir {report.logdir}")
