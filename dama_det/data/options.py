"""Options and entry functions of the data stages ``dama-det data synth``, ``to-coco`` and
``crops`` (:mod:`dama_det.options`: the dataclasses read their fields and defaults from
the parsers built here). Imports nothing heavy; the generators load when a stage runs.
"""
from __future__ import annotations

import argparse
import time

from ..options import StageOptions, stage_options


def add_to_coco_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``data to-coco`` options to ``parser``; returns it."""
    g = parser.add_argument_group("input")
    g.add_argument("folder", metavar="FOLDER", help="folder with <name>.tif + <name>_masks.tif")
    g.add_argument("--channels", type=int, default=None, metavar="C",
                   help="require every image to have C channels")
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="GT.json", help="COCO json to write")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def add_synth_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``data synth`` options to ``parser``; returns it."""
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder")
    out.add_argument("--no-preview", action="store_true", help="do not write preview.png")
    size = parser.add_argument_group("dataset size")
    size.add_argument("--n-train-tiles", type=int, default=4, help="training tiles")
    size.add_argument("--n-val-tiles", type=int, default=2, help="validation tiles")
    size.add_argument("--tile-size", type=int, default=512, help="tile height/width (px)")
    size.add_argument("--n-crops-per-type", type=int, default=40,
                      help="cell-centred crops per cell type")
    size.add_argument("--crop-size", type=int, default=128, help="crop height/width (px)")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--seed", type=int, default=0, help="random seed")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def add_crops_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``data crops`` options to ``parser``; returns it."""
    io = parser.add_argument_group("input / output")
    io.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="TIFF/OME-TIFF files or folders holding them (searched recursively)")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder")
    seg = parser.add_argument_group("cell finding")
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
    crop = parser.add_argument_group("crops")
    crop.add_argument("--crop-size", type=int, default=128, help="crop height/width (px)")
    crop.add_argument("--tile-size", type=int, default=1000,
                      help="large images are processed in tiles of this size (px)")
    crop.add_argument("--max-crops", type=int, default=None,
                      help="stop after this many crops in total")
    crop.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@stage_options("data", "to-coco", arguments=add_to_coco_arguments)
class ToCocoOptions(StageOptions):
    """``dama-det data to-coco``: a folder of image / ``_masks`` pairs -> COCO json."""

    folder: str
    channels: int | None
    out: str
    quiet: bool


@stage_options("data", "synth", arguments=add_synth_arguments)
class SynthOptions(StageOptions):
    """``dama-det data synth``: the built-in synthetic 7-channel data set."""

    out: str
    no_preview: bool
    n_train_tiles: int
    n_val_tiles: int
    tile_size: int
    n_crops_per_type: int
    crop_size: int
    seed: int
    quiet: bool


@stage_options("data", "crops", arguments=add_crops_arguments)
class CropsOptions(StageOptions):
    """``dama-det data crops``: cell-centred crops cut out of large images."""

    inputs: list[str]
    out: str
    nuclear_channel: int
    erosion_radius: int
    min_distance: int | None
    min_area: int | None
    crop_size: int
    tile_size: int
    max_crops: int | None
    quiet: bool


def run_to_coco(opts: ToCocoOptions) -> None:
    """Write the COCO json of ``opts.folder`` to ``opts.out`` (atomically)."""
    from ..utils import atomic_write_json, check_output_file
    from .coco_labels import folder_to_coco

    opts.validate()
    out = check_output_file(opts.out)
    t0 = time.perf_counter()
    coco = folder_to_coco(opts.folder, progress=not opts.quiet, relative_to=out.resolve().parent,
                          expected_channels=opts.channels)
    atomic_write_json(out, coco, indent=None)
    print(f"wrote {out}: {len(coco['images'])} images, {len(coco['annotations'])} instances "
          f"({time.perf_counter() - t0:.1f} s)")


def run_synth(opts: SynthOptions) -> None:
    """Generate the synthetic data set into ``opts.out``."""
    from .synth import generate_dataset

    opts.validate()
    t0 = time.perf_counter()
    paths = generate_dataset(
        opts.out,
        n_train_tiles=opts.n_train_tiles,
        n_val_tiles=opts.n_val_tiles,
        tile_size=opts.tile_size,
        n_crops_per_type=opts.n_crops_per_type,
        crop_size=opts.crop_size,
        seed=opts.seed,
        progress=not opts.quiet,
        preview=not opts.no_preview,
    )
    dt = time.perf_counter() - t0
    print(f"wrote synthetic dataset to {opts.out} in {dt:.1f} s "
          f"({len(paths['train_images'])} train + {len(paths['val_images'])} val tiles, "
          f"{len(paths['crops'])} crops)")


def run_crops(opts: CropsOptions) -> None:
    """Cut the cell-centred crops of ``opts.inputs`` into ``opts.out``."""
    from .crops import extract_cell_crops

    opts.validate()
    result = extract_cell_crops(
        opts.inputs,
        opts.out,
        crop_size=opts.crop_size,
        tile_size=opts.tile_size,
        nuclear_channel=opts.nuclear_channel,
        erosion_radius=opts.erosion_radius,
        min_distance=opts.min_distance,
        min_area=opts.min_area,
        max_crops=opts.max_crops,
        progress=not opts.quiet,
    )
    print(f"wrote {len(result)} crops to {opts.out}")
