"""``dama-det predict``: instance masks for N-channel images with a trained Mask R-CNN.

Inputs are TIFF / OME-TIFF files, folders of them, or a COCO json (its ``images``,
ids kept). Images of any size are predicted by overlapping sliding windows whose
instances are merged (memory does not grow with the image beyond the label image).
Outputs in ``--out``: ``<name>_masks.tif`` label images (0 = background, 1..N; napari
and cellpose read them), ``<name>_overlay.png`` (channel composite + outlines) and
``predictions.json`` (images + COCO results with RLE masks and scores, for
``dama-det eval``). A folder holding an earlier prediction needs ``--overwrite``, which
removes the files that prediction wrote first.
"""
from __future__ import annotations

import argparse

from ..inference.options import PredictOptions, add_predict_arguments
from ._args import HelpFormatter


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict",
        help="predict cell masks: label TIFFs, COCO results json, PNG overlays",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        formatter_class=HelpFormatter,
    )
    add_predict_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det predict``; returns the exit status."""
    from ..inference.predict_command import run_predict

    run_predict(PredictOptions.from_namespace(args))
    return 0
