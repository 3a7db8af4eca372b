"""``dama-det predict``: instance masks for N-channel images with a trained Mask R-CNN.

Inputs are TIFF / OME-TIFF files, folders of them, or a COCO json (its ``images``,
ids kept). Images of any size are predicted by overlapping sliding windows whose
instances are merged (memory does not grow with the image beyond the label image).
Outputs in ``--out``: ``<name>_masks.tif`` label images (0 = background, 1..N; napari
and cellpose read them), ``<name>_overlay.png`` (channel composite + outlines) and
``predictions.json`` (images + COCO results with RLE masks and scores, for
``dama-det eval``). A folder holding an earlier prediction needs ``--overwrite``, which
removes the files that prediction wrote first.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._args import fraction, non_negative_int, positive_int

# Windows per forward (the results do not depend on it; on CPU the gain is the encoder's)
# and image-reading worker processes.
DEFAULT_BATCH, DEFAULT_WORKERS = 4, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict",
        help="predict cell masks: label TIFFs, COCO results json, PNG overlays",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("input")
    g.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file(s) (.tif/.ome.tif), folder(s) of images (*_masks.tif "
                   "skipped; ids 1..N by name, as `dama-det data to-coco` numbers them) or "
                   "a COCO json whose images to predict (ids kept)")
    g = p.add_argument_group("model")
    g.add_argument("--weights", required=True, metavar="MODEL.pth",
                   help="Detectron2 checkpoint written by `dama-det train` "
                   "(e.g. OUTPUT_DIR/model_final.pth)")
    g.add_argument("--config-file", default=None, metavar="FILE",
                   help="training config (path or shipped name); None: the config.yaml "
                   "beside --weights")
    g.add_argument("--score-thresh", type=fraction, default=0.5, metavar="S",
                   help="keep detections scoring at least S (use e.g. 0.05 for COCO AP)")
    g = p.add_argument_group("tiling")
    g.add_argument("--tile-size", type=positive_int, default=None, metavar="PX",
                   help="sliding-window side; None: the training crop size "
                   "(INPUT.LSJ.IMAGE_SIZE)")
    g.add_argument("--overlap", type=non_negative_int, default=None, metavar="PX",
                   help="minimum overlap of neighbouring windows; should exceed the "
                   "largest cell; None: a quarter of the tile size")
    g.add_argument("--merge-thresh", type=fraction, default=0.5, metavar="F",
                   help="overlap (of the smaller instance) above which detections of two "
                   "windows are one instance")
    g = p.add_argument_group("hardware")
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
                   help="mixed precision (auto: bf16/fp16 on CUDA, off on CPU)")
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--overwrite", action="store_true",
                   help="predict into a folder that holds an earlier prediction, removing the "
                   "files its predictions.json lists first (without it such a folder is "
                   "refused)")
    g.add_argument("--no-overlay", action="store_true", help="do not write PNG overlays")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _config_path(config_file: str | None, weights: Path) -> Path:
    from ..engine.config_files import find_config_file
    from ..errors import DamaUserError

    if config_file:
        return find_config_file(config_file)
    beside = weights.parent / "config.yaml"
    if beside.is_file():
        return beside
    raise DamaUserError(
        f"{weights}: no config.yaml beside the weights; give the training config with "
        "--config-file"
    )


def load_predict_config(config_file: str | None, weights: str):
    """The training config for ``weights`` (dama_det keys added), not frozen.

    Raises:
        DamaUserError: missing weights or config, or a config Detectron2 rejects.
    """
    from .. import get_dama_cfg
    from ..engine.config_files import check_channel_config, merge_config_file
    from ..errors import DamaUserError, print_warning

    weights_path = Path(weights)
    if not weights_path.is_file():
        raise DamaUserError(f"{weights_path}: weights file not found (give --weights a "
                            "checkpoint written by `dama-det train`)")
    path = _config_path(config_file, weights_path)
    cfg = merge_config_file(get_dama_cfg(), path)
    check_channel_config(cfg, path)
    if config_file and str(cfg.INPUT.PIXEL_STATS).lower() == "train":
        print_warning(f"{path} sets INPUT.PIXEL_STATS train: training replaced its "
                      "PIXEL_MEAN/PIXEL_STD by the training images' statistics, which only "
                      "the run's config.yaml (beside the weights; the default without "
                      "--config-file) holds")
    return cfg


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det predict``; returns the exit status."""
    from ..inference.inputs import collect_inputs
    from ..inference.predict_images import (
        PREDICTIONS_JSON,
        PredictOptions,
        earlier_prediction_outputs,
        predict_and_write,
    )
    from ..inference.predictor import MaskRCNNTilePredictor
    from ..inference.tiling import check_tiling
    from ..utils import check_output_dir, claim_output_dir

    check_output_dir(args.out)
    cfg = load_predict_config(args.config_file, args.weights)
    inputs = collect_inputs(args.inputs, expected_channels=len(cfg.MODEL.PIXEL_MEAN))
    tile = args.tile_size or int(cfg.INPUT.LSJ.IMAGE_SIZE)
    overlap = args.overlap if args.overlap is not None else tile // 4
    check_tiling(tile, overlap)
    claim_output_dir(args.out, earlier_prediction_outputs(args.out), overwrite=args.overwrite,
                     can_resume=False)
    predictor = MaskRCNNTilePredictor.from_config(
        cfg, args.weights, device=args.device, amp=args.amp,
        score_thresh=args.score_thresh, tile_size=tile,
    )
    opts = PredictOptions(
        num_channels=len(cfg.MODEL.PIXEL_MEAN),
        intensity_scaling=cfg.INPUT.INTENSITY_SCALING,
        percentile_range=tuple(cfg.INPUT.PERCENTILE_RANGE),
        tile_size=tile, overlap=overlap, batch_size=args.batch, workers=args.workers,
        merge_threshold=args.merge_thresh, overlay=not args.no_overlay,
        progress=not args.quiet,
        info={"weights": str(Path(args.weights).resolve()),
              "score_thresh": args.score_thresh},
    )
    preds = predict_and_write(inputs, predictor, args.out, opts)
    n = len(preds["annotations"])
    print(f"{len(inputs)} image(s), {n} instance(s) -> {Path(args.out) / PREDICTIONS_JSON}")
    return 0
