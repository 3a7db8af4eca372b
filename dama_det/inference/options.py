"""Options of the prediction stages ``dama-det predict`` (:class:`PredictOptions`, run by
:func:`~.predict_command.run_predict`) and ``dama-det classical``
(:class:`ClassicalOptions`, run by :func:`~.classical.run_classical`): the argparse
flags and the typed options read from them (:mod:`dama_det.options`). Imports nothing
heavy, so the command line's ``--help`` stays fast.

Not to be confused with :class:`~.predict_images.PredictOptions`, the per-image tiling
and output settings that :func:`~.predict_command.run_predict` derives from these
options and the training config.
"""
from __future__ import annotations

import argparse

from ..errors import DamaUserError
from ..options import (
    StageOptions,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_int,
    stage_options,
    value_check,
)

# Windows per forward (the results do not depend on it; on CPU the gain is the encoder's)
# and image-reading worker processes.
DEFAULT_BATCH, DEFAULT_WORKERS = 4, 1

#: ``--tta`` choices: no test-time augmentation, the four flips with box voting, or with
#: NMS only (Detectron2's merge: each instance keeps its best-scoring box); see .flip_tta
TTA_MODES = ("off", "flip", "flip-nms")

# = dama_det.inference.classical.DEFAULTS, repeated here because importing that module
# loads scipy and slows down `dama-det --help` (a test keeps them equal)
DEFAULTS = {"channel": 0, "sigma": 0.0, "min_distance": 5, "min_size": 30, "distance_sigma": 3.0}


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``dama-det predict`` options to ``parser``; returns it."""
    g = parser.add_argument_group("input")
    g.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file(s) (.tif/.ome.tif), folder(s) of images (*_masks.tif "
                   "skipped; ids 1..N by name, as `dama-det data to-coco` numbers them) or "
                   "a COCO json whose images to predict (ids kept)")
    g = parser.add_argument_group("model")
    g.add_argument("--weights", required=True, metavar="MODEL.pth",
                   help="Detectron2 checkpoint written by `dama-det train` "
                   "(e.g. OUTPUT_DIR/model_final.pth)")
    g.add_argument("--config-file", default=None, metavar="FILE",
                   help="training config (path or shipped name); None: the config.yaml "
                   "beside --weights")
    g.add_argument("--score-thresh", type=fraction, default=0.5, metavar="S",
                   help="keep detections scoring at least S (use e.g. 0.05 for COCO AP)")
    g = parser.add_argument_group("tiling")
    g.add_argument("--tile-size", type=positive_int, default=None, metavar="PX",
                   help="sliding-window side; None: the config's TEST.TILE_SIZE, or the "
                   "training crop size (INPUT.LSJ.IMAGE_SIZE) where that is 0")
    g.add_argument("--overlap", type=non_negative_int, default=None, metavar="PX",
                   help="minimum overlap of neighbouring windows; should exceed the "
                   "largest cell; None: a quarter of the tile size")
    g.add_argument("--merge-thresh", type=fraction, default=0.5, metavar="F",
                   help="overlap (of the smaller instance) above which detections of two "
                   "windows are one instance")
    g.add_argument("--tta", default="off", choices=TTA_MODES,
                   help="test-time augmentation: 'flip' predicts every window and its three "
                   "flips, lets the views vote on each instance's box and score (what one "
                   "view alone finds scores a quarter) and averages the masks; 'flip-nms' "
                   "keeps each instance's best box and score (Detectron2's merge); ~4x the "
                   "prediction time")
    g = parser.add_argument_group("hardware")
    g.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH, metavar="N",
                   help="windows per forward pass, also across consecutive images; the "
                   "results are the same for every N, bit for bit (the ViT encoder runs on "
                   "N windows at once, the heads window by window); larger N needs more "
                   "memory")
    g.add_argument("--workers", type=non_negative_int, default=DEFAULT_WORKERS, metavar="N",
                   help="background processes reading (and percentile-scaling) the next "
                   "images while the model runs; 0: read in the main process")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (auto: bf16/fp16 on CUDA, bf16 on CPUs with native "
                   "bf16 (AVX512-BF16 / AMX), else off)")
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--overwrite", action="store_true",
                   help="predict into a folder that holds an earlier prediction, removing the "
                   "files its predictions.json lists first (without it such a folder is "
                   "refused)")
    g.add_argument("--no-overlay", action="store_true", help="do not write PNG overlays")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@value_check
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


def add_classical_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``dama-det classical`` options to ``parser``; returns it."""
    g = parser.add_argument_group("input")
    g.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file(s) (.tif/.ome.tif), folder(s) of images (*_masks.tif "
                   "skipped; ids 1..N by name, as `dama-det data to-coco` numbers them) or "
                   "a COCO json whose images to segment (ids kept)")
    g = parser.add_argument_group("segmentation")
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
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--no-overlay", action="store_true", help="do not write PNG overlays")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@stage_options("predict", arguments=add_predict_arguments)
class PredictOptions(StageOptions):
    """``dama-det predict``: tiled prediction with a trained detector."""

    inputs: list[str]
    weights: str
    config_file: str | None
    score_thresh: float
    tile_size: int | None
    overlap: int | None
    merge_thresh: float
    tta: str
    batch: int
    workers: int
    device: str
    amp: str
    out: str
    overwrite: bool
    no_overlay: bool
    quiet: bool


@stage_options("classical", arguments=add_classical_arguments)
class ClassicalOptions(StageOptions):
    """``dama-det classical``: Otsu + watershed instances, no training."""

    FORMAT = {"channel": lambda value: "mean" if value is None else str(value)}

    inputs: list[str]
    channel: int | None
    sigma: float
    min_distance: int
    min_size: int
    distance_sigma: float
    out: str
    no_overlay: bool
    quiet: bool

    def check(self) -> None:
        """Raises DamaUserError for a channel that is neither an index nor None."""
        if self.channel is not None and not isinstance(self.channel, int):
            raise DamaUserError(f"argument --channel: expected a channel index or 'mean', "
                                f"got {self.channel!r}")
