"""``dama-det export``: pretraining checkpoint -> encoder export for detection/classification."""
from __future__ import annotations

import argparse

from ..pretrain.options import ExportOptions, add_export_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export", help="write the student-1 encoder of a pretraining checkpoint",
        description="Extract the student-1 ViT encoder (timm/MAE/DeiT key names, no decoder) "
        "from a `dama-det pretrain` checkpoint, with its img_size, patch_size, in_chans, "
        "embed_dim, depth and num_heads: the file `dama-det train` and `dama-det classify` load.",
    )
    add_export_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the export; returns the exit status."""
    from ..pretrain.export import run_export

    run_export(ExportOptions.from_namespace(args))
    return 0
