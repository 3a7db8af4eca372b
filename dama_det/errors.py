"""Errors that mean "the user gave bad input" (shown as one line, no traceback), and
the matching one-line warnings."""
from __future__ import annotations

import sys


class DamaUserError(Exception):
    """A user mistake: a missing or corrupt file, a wrong channel count, a bad key.

    The CLI prints ``error: <message>`` and exits with status 2 instead of a
    traceback. The message should name the file, line or key concerned.
    """


class ReportedError(DamaUserError):
    """A user error already printed as its ``error:`` line by an inner command (a stage of
    ``demo`` / ``compare``); the CLI adds one ``stopped:`` line of context, not a second
    ``error:`` line."""


def print_warning(message: str) -> None:
    """Print ``warning: <message>`` as one line on stderr: something the user should
    know that does not stop the command (the message names the file or key)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
