"""``dama-det predict`` as a function: :func:`run_predict` takes the command's typed
options (:class:`~.options.PredictOptions`), loads the trained detector and its config,
predicts the inputs by tiles and writes label images, overlays and ``predictions.json``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DamaUserError
from .options import PredictOptions


def _config_path(config_file: str | None, weights: Path) -> Path:
    from ..engine.config_files import find_config_file

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
    from ..errors import print_warning

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


def default_tile_size(cfg, tile_size: int | None = None) -> int:
    """The sliding-window side for prediction.

    Args:
        cfg: the detector's config.
        tile_size: ``--tile-size`` (None: not given).

    Returns:
        ``tile_size`` if given, else ``TEST.TILE_SIZE`` if set (> 0), else the training
        crop size ``INPUT.LSJ.IMAGE_SIZE``.
    """
    if tile_size:
        return int(tile_size)
    return int(cfg.TEST.TILE_SIZE) or int(cfg.INPUT.LSJ.IMAGE_SIZE)


def run_predict(opts: PredictOptions) -> Path:
    """Predict ``opts.inputs`` with ``opts.weights`` into ``opts.out``: the entry function
    of ``dama-det predict``.

    Returns:
        ``opts.out/predictions.json``.

    Raises:
        DamaUserError: a bad option, input, weights file or config, or an output folder
            holding an earlier prediction without ``overwrite`` (checked before writing).
    """
    from ..utils import check_output_dir, claim_output_dir
    from .inputs import collect_inputs
    from .predict_images import PREDICTIONS_JSON, earlier_prediction_outputs, predict_and_write
    from .predict_images import PredictOptions as WriteOptions
    from .predictor import MaskRCNNTilePredictor
    from .tiling import check_tiling

    opts.validate()
    check_output_dir(opts.out)
    cfg = load_predict_config(opts.config_file, opts.weights)
    inputs = collect_inputs(opts.inputs, expected_channels=len(cfg.MODEL.PIXEL_MEAN))
    tile = default_tile_size(cfg, opts.tile_size)
    overlap = opts.overlap if opts.overlap is not None else tile // 4
    check_tiling(tile, overlap)
    claim_output_dir(opts.out, earlier_prediction_outputs(opts.out), overwrite=opts.overwrite,
                     can_resume=False)
    predictor = MaskRCNNTilePredictor.from_config(
        cfg, opts.weights, device=opts.device, amp=opts.amp,
        score_thresh=opts.score_thresh, tile_size=tile, tta=opts.tta,
    )
    write = WriteOptions(
        num_channels=len(cfg.MODEL.PIXEL_MEAN),
        intensity_scaling=cfg.INPUT.INTENSITY_SCALING,
        percentile_range=tuple(cfg.INPUT.PERCENTILE_RANGE),
        tile_size=tile, overlap=overlap, batch_size=opts.batch, workers=opts.workers,
        merge_threshold=opts.merge_thresh, overlay=not opts.no_overlay,
        progress=not opts.quiet,
        info={"weights": str(Path(opts.weights).resolve()),
              "score_thresh": opts.score_thresh, "tta": opts.tta},
    )
    preds = predict_and_write(inputs, predictor, opts.out, write)
    n = len(preds["annotations"])
    out = Path(opts.out) / PREDICTIONS_JSON
    print(f"{len(inputs)} image(s), {n} instance(s) -> {out}")
    return out
