"""Shared argparse pieces of the ``dama-det`` subcommands: a help formatter and value
types that reject bad numbers with a clear message (argparse then prints one
``error:`` line and exits 2; they live in :mod:`dama_det.options`, which repeats them
for typed options)."""
from __future__ import annotations

import argparse

from ..options import fraction, non_negative_float, non_negative_int, positive_int

__all__ = ["DefaultsHelpFormatter", "HelpFormatter", "fraction", "non_negative_float",
           "non_negative_int", "positive_int"]


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults except empty ones (None / False: required, auto-chosen or on/off
    values, whose help says what happens without them); wraps descriptions."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class HelpFormatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`DefaultsHelpFormatter` that keeps the line breaks of descriptions and
    epilogs (examples)."""
