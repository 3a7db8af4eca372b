"""``dama-det export``: pretraining checkpoint -> encoder export for detection/classification."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export", help="write the student-1 encoder of a pretraining checkpoint",
        description="Extract the student-1 ViT encoder (timm/MAE/DeiT key names, no decoder) "
        "from a `dama-det pretrain` checkpoint, with its img_size, patch_size, in_chans, "
        "embed_dim, depth and num_heads: the file `dama-det train` and `dama-det classify` load.",
    )
    io = parser.add_argument_group("input / output")
    io.add_argument("checkpoint", metavar="CHECKPOINT",
                    help="checkpoint-*.pth from dama-det pretrain")
    io.add_argument("--out", required=True, metavar="FILE", help="encoder export to write (.pth)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the export; returns the exit status."""
    from ..encoder_export.format import load_encoder_export
    from ..pretrain.export import export_checkpoint
    from ..utils import check_output_file

    path = export_checkpoint(args.checkpoint, check_output_file(args.out))
    meta = load_encoder_export(path)
    print(f"wrote {path}: {meta['method']} encoder, {meta['embed_dim']}/{meta['depth']}/"
          f"{meta['num_heads']}, {meta['in_chans']} channels, {meta['img_size']} px, "
          f"patch {meta['patch_size']}, epoch {meta['epoch']}")
    return 0
