"""``dama-det data synth``: write the built-in synthetic multiplexed brain-tissue data.

The data CLI (``dama_det/cli/data.py``) calls :func:`add_parser` with its
subparsers; the generator itself (numpy/scipy/scikit-image) is imported only when the
command runs, so ``dama-det --help`` stays fast.
"""
from __future__ import annotations

import argparse
import time

from ..cli._args import HelpFormatter


def add_parser(data_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``synth`` subcommand to the ``dama-det data`` group.

    Args:
        data_subparsers: the object returned by ``add_subparsers`` of the data group.

    Returns:
        The new subparser.
    """
    p = data_subparsers.add_parser(
        "synth",
        help="generate synthetic 7-channel brain-tissue tiles, COCO labels and cell crops",
        description="Generate the built-in synthetic multiplexed brain-tissue dataset: "
        "7-channel uint16 tiles (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1) with "
        "instance label images and COCO json per split, 128 x 128 cell-centred crops "
        "per cell type (neuron, astrocyte, oligodendrocyte, microglia, endothelial), "
        "meta.json and a preview.png. Same seed -> identical files.",
        formatter_class=HelpFormatter,
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder")
    out.add_argument("--no-preview", action="store_true", help="do not write preview.png")
    size = p.add_argument_group("dataset size")
    size.add_argument("--n-train-tiles", type=int, default=4, help="training tiles")
    size.add_argument("--n-val-tiles", type=int, default=2, help="validation tiles")
    size.add_argument("--tile-size", type=int, default=512, help="tile height/width (px)")
    size.add_argument("--n-crops-per-type", type=int, default=40,
                      help="cell-centred crops per cell type")
    size.add_argument("--crop-size", type=int, default=128, help="crop height/width (px)")
    gen = p.add_argument_group("generation")
    gen.add_argument("--seed", type=int, default=0, help="random seed")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


add_synth_parser = add_parser


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det data synth``; returns the exit status."""
    from .synth import generate_dataset

    t0 = time.perf_counter()
    paths = generate_dataset(
        args.out,
        n_train_tiles=args.n_train_tiles,
        n_val_tiles=args.n_val_tiles,
        tile_size=args.tile_size,
        n_crops_per_type=args.n_crops_per_type,
        crop_size=args.crop_size,
        seed=args.seed,
        progress=not args.quiet,
        preview=not args.no_preview,
    )
    dt = time.perf_counter() - t0
    print(f"wrote synthetic dataset to {args.out} in {dt:.1f} s "
          f"({len(paths['train_images'])} train + {len(paths['val_images'])} val tiles, "
          f"{len(paths['crops'])} crops)")
    return 0
