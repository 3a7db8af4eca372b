"""Errors that mean "the user gave bad input" (shown as one line, no traceback)."""
from __future__ import annotations


class DamaUserError(Exception):
    """A user mistake: a missing or corrupt file, a wrong channel count, a bad key.

    The CLI prints ``error: <message>`` and exits with status 2 instead of a
    traceback. The message should name the file, line or key concerned.
    """
