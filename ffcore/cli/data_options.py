"""The options that choose the data a command runs a saved model on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from ffcore.cli.completion import complete_component

Command = TypeVar("Command", bound=Callable[..., object])


def checkpoint_data_options(purpose: str) -> Callable[[Command], Command]:
    """``--dataset``, ``--data-root`` and ``--download`` for a command that reads a
    checkpoint: the data set defaults to the one the model was trained on.

    ``purpose`` finishes the ``--dataset`` help, e.g. ``"test on"``; the options keep their
    names and meaning in every command, so that one command line moves between them.
    """
    options = [
        click.option(
            "--dataset",
            shell_complete=complete_component("dataset"),
            help=f"Dataset to {purpose} (default: the one it was trained on).",
        ),
        click.option("--data-root", type=click.Path(file_okay=False), help="Data directory."),
        click.option("--download/--no-download", default=None, help="Allow downloading data."),
    ]

    def decorate(command: Command) -> Command:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
