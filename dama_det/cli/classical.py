"""``dama-det classical``: a training-free baseline (Otsu threshold + watershed).

One channel (or the channel mean) is smoothed, thresholded with Otsu's method, and
touching objects are split by a watershed on the distance transform, seeded at its
local maxima. No model, no GPU: the reference point for learned methods, for bright
objects (nuclei) on a dark background. Defaults were chosen on DSB2018 train images.
Inputs and outputs are those of `dama-det predict`: ``<name>_masks.tif`` label images,
``<name>_overlay.png`` and ``predictions.json`` (COCO results; score = the instance's
solidity) for ``dama-det eval --results classical=OUT/predictions.json``.
"""
from __future__ import annotations

import argparse

from ..inference.options import DEFAULTS, ClassicalOptions, add_classical_arguments, channel_arg
from ._args import HelpFormatter, non_negative_float

# DEFAULTS: = dama_det.inference.classical.DEFAULTS (see dama_det.inference.options)
__all__ = ["DEFAULTS", "channel_arg", "non_negative_float", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classical`` subcommand."""
    p = subparsers.add_parser(
        "classical",
        help="training-free baseline (Otsu + watershed): label TIFFs, COCO results json",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        formatter_class=HelpFormatter,
    )
    add_classical_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det classical``; returns the exit status."""
    from ..inference.classical import run_classical

    run_classical(ClassicalOptions.from_namespace(args))
    return 0
