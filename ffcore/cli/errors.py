"""How the CLI reports user errors: one line on stderr, exit status 2."""

from __future__ import annotations

import click


class CLIError(click.ClickException):
    """A user error: click prints ``Error: <message>`` and exits with status 2."""

    exit_code = 2
