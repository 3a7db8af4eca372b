"""``dama-det data crops``: cut cell-centred crops out of large multiplexed images.

The data CLI (``dama_det/cli/data.py``) calls :func:`add_parser` with its
subparsers; scikit-image etc. are imported only when the command runs.
"""
from __future__ import annotations

import argparse

from ..cli._args import HelpFormatter


def add_parser(data_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``crops`` subcommand to the ``dama-det data`` group.

    Args:
        data_subparsers: the object returned by ``add_subparsers`` of the data group.

    Returns:
        The new subparser.
    """
    p = data_subparsers.add_parser(
        "crops",
        help="extract cell-centred crops from large images (watershed on the nuclear channel)",
        description="Cut large multiplexed images into tiles, find cell centres by "
        "Otsu threshold + erosion + distance-transform watershed on the nuclear "
        "channel, and write a crop around every centre as OME-TIFF (the paper's "
        "'noisy' pretraining sets), plus crops.csv (file, source, y, x). Crops that "
        "would reach past the image border are skipped.",
        formatter_class=HelpFormatter,
    )
    io = p.add_argument_group("input / output")
    io.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="TIFF/OME-TIFF files or folders holding them (searched recursively)")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder")
    seg = p.add_argument_group("cell finding")
    seg.add_argument("--nuclear-channel", type=int, default=0,
                     help="channel index used to find nuclei; -1 = sum of all channels")
    seg.add_argument("--erosion-radius", type=int, default=2,
                     help="disk radius of the erosion applied to the foreground mask")
    seg.add_argument("--min-distance", type=int, default=None,
                     help="minimum distance (px) between two cell centres "
                     "(default: max(3, crop_size // 24))")
    seg.add_argument("--min-area", type=int, default=None,
                     help="smallest eroded nucleus area (px) kept "
                     "(default: max(8, min_distance**2 // 2))")
    crop = p.add_argument_group("crops")
    crop.add_argument("--crop-size", type=int, default=128, help="crop height/width (px)")
    crop.add_argument("--tile-size", type=int, default=1000,
                      help="large images are processed in tiles of this size (px)")
    crop.add_argument("--max-crops", type=int, default=None,
                      help="stop after this many crops in total")
    crop.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


add_crops_parser = add_parser


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det data crops``; returns the exit status."""
    from .crops import extract_cell_crops

    result = extract_cell_crops(
        args.inputs,
        args.out,
        crop_size=args.crop_size,
        tile_size=args.tile_size,
        nuclear_channel=args.nuclear_channel,
        erosion_radius=args.erosion_radius,
        min_distance=args.min_distance,
        min_area=args.min_area,
        max_crops=args.max_crops,
        progress=not args.quiet,
    )
    print(f"wrote {len(result)} crops to {args.out}")
    return 0
