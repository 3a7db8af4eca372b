"""Options of ``dama-det probe``: the argparse flags and :class:`ProbeOptions`, the typed
options :func:`~.run.run_probe` takes (:mod:`dama_det.options`). Imports nothing heavy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..encoder_export.sizes import MODEL_SIZES
from ..errors import DamaUserError
from ..options import StageOptions, fraction, positive_int, stage_options


def add_probe_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``dama-det probe`` options to ``parser``; returns it."""
    g = parser.add_argument_group("encoder")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="ENCODER.pth",
                     help="encoder export written by `dama-det export` (or pretraining)")
    src.add_argument("--random", action="store_true",
                     help="an untrained encoder (pretraining's default init, sin-cos positions) of "
                     "--model size: the control (what `dama-det compare` calls `init`)")
    g.add_argument("--model", default="mini", choices=tuple(MODEL_SIZES),
                   help="size of the --random encoder")
    g.add_argument("--patch-size", type=positive_int, default=16,
                   help="patch size of the --random encoder")
    g.add_argument("--with-random", action="store_true",
                   help="with --weights: also probe its untrained counterpart (same "
                   "architecture, --seed) on the same split and report the differences")

    g = parser.add_argument_group("task")
    g.add_argument("--task", required=True, choices=("celltype", "dense"),
                   help="celltype: crop-level cell type; dense: per-patch "
                   "background/interior/boundary")
    g.add_argument("--data", required=True, type=Path, metavar="DIR",
                   help="celltype: crops folder with labels.csv (or one sub-folder per "
                   "class); dense: folder of <name>.tif + <name>_masks.tif pairs")
    g.add_argument("--img-size", type=positive_int, default=None, metavar="PX",
                   help="encoder input side: crops are resized to it, images cut into "
                   "tiles of it; None: the export's, 128 for --random")
    g.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                   help="use a seeded subset of N crops (class-balanced) / images")
    g.add_argument("--intensity-scaling", choices=("dtype_max", "percentile", "none"),
                   default="dtype_max",
                   help="dtype_max: divide by the pixel type's maximum (as pretraining)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the split, the subset and the random weights")

    g = parser.add_argument_group("probes")
    g.add_argument("--folds", type=int, default=2, metavar="K",
                   help="celltype: stratified folds, each the test split once (2 = 50/50)")
    g.add_argument("--test-fraction", type=fraction, default=0.5, metavar="F",
                   help="dense: fraction of the images tested on")
    g.add_argument("--pool", choices=("centre", "mean"), default="centre",
                   help="celltype: the crop feature, the mean of the patch tokens covering the "
                   "crop's centre (cell-centred crops, as `dama-det data synth` writes: the "
                   "labelled cell, not its neighbours) or of all patch tokens")
    g.add_argument("--knn-k", type=positive_int, default=20, metavar="K",
                   help="celltype: neighbours of the k-NN probe")
    g.add_argument("--knn-weighting", choices=("temperature", "majority"),
                   default="temperature",
                   help="k-NN votes: exp(cosine / 0.07) per neighbour, or one each")
    g.add_argument("--weight-decay", type=float, default=1e-3, metavar="WD",
                   help="L2 penalty of the linear probe (standardised features)")
    g.add_argument("--max-iter", type=positive_int, default=100, metavar="N",
                   help="L-BFGS iterations of the linear probe")
    g.add_argument("--interior-min", type=fraction, default=0.5, metavar="F",
                   help="dense: nucleus fraction from which a patch is 'interior'")

    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--amp", default="off", choices=("auto", "bf16", "fp16", "off"),
                   help="autocast of the encoder (auto: bf16/fp16 on CUDA, off on CPU)")
    g.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                   help="images per forward pass")

    g = parser.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, metavar="metrics.json",
                   help="write the full result as JSON (atomically)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@stage_options("probe", arguments=add_probe_arguments)
class ProbeOptions(StageOptions):
    """``dama-det probe``: frozen-encoder probes of an export (or of a random encoder)."""

    weights: str | None
    random: bool
    model: str
    patch_size: int
    with_random: bool
    task: str
    data: Path
    img_size: int | None
    max_images: int | None
    intensity_scaling: str
    seed: int
    folds: int
    pool: str
    test_fraction: float
    knn_k: int
    knn_weighting: str
    weight_decay: float
    max_iter: int
    interior_min: float
    device: str
    amp: str
    batch_size: int
    out: Path | None
    quiet: bool

    def check(self) -> None:
        """The encoder source (--weights or --random, not both) and the data folder.

        Raises:
            DamaUserError: the first problem, worded as the command line words it.
        """
        if self.weights is not None and self.random:
            raise DamaUserError("argument --random: not allowed with argument --weights")
        if self.weights is None and not self.random:
            raise DamaUserError("one of the arguments --weights --random is required")
        if self.with_random and self.random:
            raise DamaUserError("--with-random needs --weights (--random is already the "
                                "control)")
        if not Path(self.data).exists():
            raise DamaUserError(f"{self.data}: no such data folder")
