"""``dama-det data``: dataset conversion and generation.

Subcommands: ``to-coco`` (folder of ``<name>.tif`` + ``<name>_masks.tif`` -> COCO json),
``from-coco`` (COCO json -> folder of label images), and the synthetic-data commands
``synth`` and ``crops`` (added by :mod:`dama_det.data.synth_cli` and
:mod:`dama_det.data.crops_cli`).
"""
from __future__ import annotations

import argparse
import time

from ..data import crops_cli, synth_cli


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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = to_coco.add_argument_group("input")
    g.add_argument("folder", metavar="FOLDER", help="folder with <name>.tif + <name>_masks.tif")
    g.add_argument("--channels", type=int, default=None, metavar="C",
                   help="require every image to have C channels")
    g = to_coco.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="GT.json", help="COCO json to write")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    to_coco.set_defaults(func=run_to_coco)

    from_coco = sub.add_parser(
        "from-coco",
        help="COCO instances json -> folder of <name>_masks.tif label images",
        description="Write one <name>_masks.tif label image per image of a COCO "
        "instances json (later annotations win where masks overlap) and copy the images "
        "beside them, giving a cellpose-style folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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

    synth_cli.add_parser(sub)
    crops_cli.add_parser(sub)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_to_coco(args: argparse.Namespace) -> int:
    """``dama-det data to-coco FOLDER --out GT.json``."""
    from ..data.coco_labels import folder_to_coco
    from ..utils import atomic_write_json, check_output_file

    out = check_output_file(args.out)
    t0 = time.perf_counter()
    coco = folder_to_coco(args.folder, progress=not args.quiet, relative_to=out.resolve().parent,
                          expected_channels=args.channels)
    atomic_write_json(out, coco, indent=None)
    print(f"wrote {out}: {len(coco['images'])} images, {len(coco['annotations'])} instances "
          f"({time.perf_counter() - t0:.1f} s)")
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
