"""``dama-det data``: dataset conversion and generation.

Subcommands: ``to-coco`` (folder of ``<name>.tif`` + ``<name>_masks.tif`` -> COCO json),
``from-coco`` (COCO json -> folder of label images), ``synth`` (the built-in synthetic
multiplexed brain-tissue data) and ``crops`` (cell-centred crops cut out of large
images). The generators (numpy/scipy/scikit-image) are imported only when a command
runs, so ``dama-det --help`` stays fast.
"""
from __future__ import annotations

import argparse
import time

from ..data.options import add_crops_arguments, add_synth_arguments, add_to_coco_arguments
from ._args import DefaultsHelpFormatter, HelpFormatter


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` group and its subcommands."""
    parser = subparsers.add_parser(
        "data",
        help="convert datasets (label images <-> COCO json) and generate synthetic data",
        description="Dataset tools: convert cellpose-style folders of <name>.tif + "
        "<name>_masks.tif label images to COCO instance json (compressed RLE masks) and "
        "back, generate synthetic multiplexed data, cut cell crops.",
    )
    parser.set_defaults(func=lambda args: _print_help(parser))
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    to_coco = sub.add_parser(
        "to-coco",
        help="folder of images + label images -> COCO instances json",
        description="Convert a folder of <name>.tif (or .ome.tif) images and "
        "<name>_masks.tif label images (0 = background, 1..N one instance each) into a "
        "COCO instances json with compressed RLE masks. file_name entries are relative "
        "to the json's folder.",
        formatter_class=DefaultsHelpFormatter,
    )
    add_to_coco_arguments(to_coco)
    to_coco.set_defaults(func=run_to_coco)

    from_coco = sub.add_parser(
        "from-coco",
        help="COCO instances json -> folder of <name>_masks.tif label images",
        description="Write one <name>_masks.tif label image per image of a COCO "
        "instances json (later annotations win where masks overlap) and copy the images "
        "beside them, giving a cellpose-style folder.",
        formatter_class=DefaultsHelpFormatter,
    )
    g = from_coco.add_argument_group("input")
    g.add_argument("coco_json", metavar="GT.json", help="COCO instances json")
    g.add_argument("--image-root", default=None, metavar="DIR",
                   help="folder file_name is relative to (default: the json's folder)")
    g = from_coco.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="FOLDER", help="output folder")
    g.add_argument("--no-images", action="store_true",
                   help="write only the label images, do not copy the images")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    from_coco.set_defaults(func=run_from_coco)

    _add_synth(sub)
    _add_crops(sub)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_to_coco(args: argparse.Namespace) -> int:
    """``dama-det data to-coco FOLDER --out GT.json``."""
    from ..data import options

    options.run_to_coco(options.ToCocoOptions.from_namespace(args))
    return 0


def run_from_coco(args: argparse.Namespace) -> int:
    """``dama-det data from-coco GT.json --out FOLDER``."""
    from ..data.coco_labels import coco_to_folder
    from ..utils import check_output_dir

    check_output_dir(args.out)
    t0 = time.perf_counter()
    written = coco_to_folder(args.coco_json, args.out, args.image_root,
                             copy_images=not args.no_images, progress=not args.quiet)
    print(f"wrote {len(written)} label images to {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate synthetic 7-channel brain-tissue tiles, COCO labels and cell crops",
        description="Generate the built-in synthetic multiplexed brain-tissue dataset: "
        "7-channel uint16 tiles (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1) with "
        "instance label images and COCO json per split, 128 x 128 cell-centred crops "
        "per cell type (neuron, astrocyte, oligodendrocyte, microglia, endothelial), "
        "meta.json and a preview.png. Same seed -> identical files.",
        formatter_class=HelpFormatter,
    )
    add_synth_arguments(p)
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """Run ``dama-det data synth``; returns the exit status."""
    from ..data import options

    options.run_synth(options.SynthOptions.from_namespace(args))
    return 0


def _add_crops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crops",
        help="extract cell-centred crops from large images (watershed on the nuclear channel)",
        description="Cut large multiplexed images into tiles, find cell centres by "
        "Otsu threshold + erosion + distance-transform watershed on the nuclear "
        "channel, and write a crop around every centre as OME-TIFF (the paper's "
        "'noisy' pretraining sets), plus crops.csv (file, source, y, x). Crops that "
        "would reach past the image border are skipped.",
        formatter_class=HelpFormatter,
    )
    add_crops_arguments(p)
    p.set_defaults(func=run_crops)


def run_crops(args: argparse.Namespace) -> int:
    """Run ``dama-det data crops``; returns the exit status."""
    from ..data import options

    options.run_crops(options.CropsOptions.from_namespace(args))
    return 0
