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
from pathlib import Path

from ._args import HelpFormatter, non_negative_int, positive_int

# = dama_det.inference.classical.DEFAULTS, repeated here because importing that package
# at registration would load torch and slow down `dama-det --help` (a test keeps them equal)
DEFAULTS = {"channel": 0, "sigma": 0.0, "min_distance": 5, "min_size": 30, "distance_sigma": 3.0}


def channel_arg(text: str) -> int | None:
    """argparse type: a channel index >= 0, or ``mean`` (None: the mean over channels)."""
    if text.strip().lower() == "mean":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel index or 'mean', got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or 'mean', got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classical`` subcommand."""
    p = subparsers.add_parser(
        "classical",
        help="training-free baseline (Otsu + watershed): label TIFFs, COCO results json",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("input")
    g.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file(s) (.tif/.ome.tif), folder(s) of images (*_masks.tif "
                   "skipped; ids 1..N by name, as `dama-det data to-coco` numbers them) or "
                   "a COCO json whose images to segment (ids kept)")
    g = p.add_argument_group("segmentation")
    g.add_argument("--channel", type=channel_arg, default=DEFAULTS["channel"], metavar="N|mean",
                   help="channel to segment (0 = the first, e.g. DAPI), or 'mean' of all")
    g.add_argument("--sigma", type=non_negative_float, default=DEFAULTS["sigma"], metavar="PX",
                   help="Gaussian smoothing before the Otsu threshold (0: none)")
    g.add_argument("--min-distance", type=positive_int, default=DEFAULTS["min_distance"],
                   metavar="PX", help="minimum distance between two watershed seeds (about "
                   "the smallest radius of an object split from a touching one)")
    g.add_argument("--min-size", type=non_negative_int, default=DEFAULTS["min_size"],
                   metavar="PX", help="remove objects with fewer pixels")
    g.add_argument("--distance-sigma", type=non_negative_float,
                   default=DEFAULTS["distance_sigma"], metavar="PX",
                   help="Gaussian smoothing of the distance map before seeding (0: none)")
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--no-overlay", action="store_true", help="do not write PNG overlays")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det classical``; returns the exit status."""
    import json

    from ..inference.classical import predict_classical
    from ..utils import check_output_dir

    check_output_dir(args.out)
    path = predict_classical(
        args.inputs, args.out, overlay=not args.no_overlay, progress=not args.quiet,
        channel=args.channel, sigma=args.sigma, min_distance=args.min_distance,
        min_size=args.min_size, distance_sigma=args.distance_sigma,
    )
    preds = json.loads(Path(path).read_text(encoding="utf-8"))
    print(f"{len(preds['images'])} image(s), {len(preds['annotations'])} instance(s) -> {path}")
    return 0
