"""ffdebug's user errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from ffcore.errors import FFLibError


class TracingError(FFLibError):
    """Traces that cannot be written or made (a bad log directory, unusable data)."""
