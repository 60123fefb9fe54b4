"""The one error the monitor raises for input it cannot read."""

from __future__ import annotations


class MonitorInputError(ValueError):
    """Unreadable input: the message names the file (and the line, where there is one) and the problem."""
