"""Build the training config from a YAML file, command-line flags and ``KEY VALUE``
overrides; register its datasets; turn an epoch budget into iterations."""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.engine import default_setup

from ..config import get_dama_cfg
from ..errors import DamaUserError
from ..modeling.vit_backbone import resolve_pretrain_img_size
from ..utils import pick_device
from .config_files import check_channel_config, find_config_file, merge_config_file
from .datasets import register_datasets_from_cfg
from .evaluators import check_evaluator_name
from .options import TrainOptions

logger = logging.getLogger(__name__)


def resolve_device(cfg: CfgNode) -> str:
    """Replace ``MODEL.DEVICE == "auto"`` by "cuda" or "cpu" (in place) and return it.

    Args:
        cfg: a config with dama_det keys (must not be frozen).

    Returns:
        The concrete device string.
    """
    dev = pick_device(cfg.MODEL.DEVICE)
    cfg.MODEL.DEVICE = str(dev)
    return cfg.MODEL.DEVICE


def _set_single(cfg: CfgNode, names_key: str, json_key: str, path: str, flag: str) -> None:
    names = list(cfg.DATASETS[names_key])
    if len(names) > 1:
        raise DamaUserError(
            f"{flag} gives one json but DATASETS.{names_key} names {len(names)} datasets "
            f"{names}; set DATASETS.{json_key} in the config instead"
        )
    if not names:
        cfg.DATASETS[names_key] = ("train" if names_key == "TRAIN" else "val",)
    cfg.DATASETS[json_key] = (str(Path(path).expanduser().resolve()),)


def build_cfg(args: TrainOptions | argparse.Namespace, resolve: bool = True) -> CfgNode:
    """The config described by ``dama-det train`` options (or parsed arguments).

    Order: defaults + ``add_dama_config`` < YAML file < flags (``--output-dir``,
    ``--weights``, ``--checkpoint``, ``--train-json``, ``--val-json``, ``--device``,
    ``--amp``, ``--seed``) < trailing ``KEY VALUE`` pairs.

    Args:
        args: :class:`~.options.TrainOptions` or parsed arguments (see
            :func:`~.options.add_train_arguments`).
        resolve: replace ``MODEL.DEVICE "auto"`` by cuda/cpu.

    Returns:
        A mutable config (datasets not registered yet).
    """
    cfg = get_dama_cfg()
    config_file = find_config_file(getattr(args, "config_file", None))
    args.config_file = str(config_file)
    merge_config_file(cfg, config_file)
    if getattr(args, "output_dir", None):
        cfg.OUTPUT_DIR = str(args.output_dir)
    if getattr(args, "weights", None):
        cfg.MODEL.DAMA_VIT.ENCODER_WEIGHTS = str(Path(args.weights).expanduser().resolve())
    if getattr(args, "checkpoint", None):
        cfg.MODEL.WEIGHTS = str(args.checkpoint)
    if getattr(args, "train_json", None):
        _set_single(cfg, "TRAIN", "TRAIN_JSON", args.train_json, "--train-json")
    if getattr(args, "val_json", None):
        _set_single(cfg, "TEST", "TEST_JSON", args.val_json, "--val-json")
    if getattr(args, "device", None):
        cfg.MODEL.DEVICE = args.device
    amp = getattr(args, "amp", None)
    if amp:
        _apply_amp_flag(cfg, amp)
    if getattr(args, "seed", None) is not None:
        cfg.SEED = int(args.seed)
    opts = list(getattr(args, "opts", None) or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    if len(opts) % 2:
        raise DamaUserError(f"config overrides must be KEY VALUE pairs, got {opts}")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as exc:
        raise DamaUserError(f"config override: {exc}") from None
    check_channel_config(cfg, config_file)
    check_evaluator_name(cfg.TEST.EVALUATOR)  # at start-up, not when training has ended
    resolve_pretrain_img_size(cfg)
    if resolve:
        resolve_device(cfg)
    return cfg


def _apply_amp_flag(cfg: CfgNode, amp: str) -> None:
    """``--amp auto|bf16|fp16|off`` -> SOLVER.AMP.* ("auto" keeps the config's choice)."""
    if amp == "auto":
        return
    if amp == "off":
        cfg.SOLVER.AMP.ENABLED = False
        cfg.SOLVER.AMP.CPU_BF16 = False
    elif amp in ("bf16", "fp16"):
        cfg.SOLVER.AMP.ENABLED = True
        cfg.SOLVER.AMP.DTYPE = amp
        cfg.SOLVER.AMP.CPU_BF16 = amp == "bf16"
    else:
        raise DamaUserError(f"--amp must be auto, bf16, fp16 or off, not {amp!r}")


def apply_epoch_schedule(cfg: CfgNode) -> None:
    """With ``SOLVER.EPOCHS > 0``: set MAX_ITER, STEPS, WARMUP_ITERS and (with
    ``TEST.EVAL_EPOCHS``) EVAL_PERIOD / CHECKPOINT_PERIOD from the training-set size.

    Needs the training datasets registered.

    Raises:
        DamaUserError: no training images, or a ``SOLVER.STEP_FRACTIONS`` outside (0, 1).
    """
    epochs = float(cfg.SOLVER.EPOCHS)
    if epochs <= 0:
        return
    n_images = sum(len(DatasetCatalog.get(name)) for name in cfg.DATASETS.TRAIN)
    if n_images == 0:
        raise DamaUserError(f"training datasets {list(cfg.DATASETS.TRAIN)} hold no images")
    per_epoch = max(1, math.ceil(n_images / cfg.SOLVER.IMS_PER_BATCH))
    max_iter = max(1, int(round(epochs * per_epoch)))
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.STEPS = _steps_at_fractions(cfg)
    cfg.SOLVER.WARMUP_ITERS = min(cfg.SOLVER.WARMUP_ITERS, max_iter // 4)
    fit_schedule(cfg)
    if cfg.TEST.EVAL_EPOCHS > 0:
        period = max(1, int(round(cfg.TEST.EVAL_EPOCHS * per_epoch)))
        cfg.TEST.EVAL_PERIOD = cfg.SOLVER.CHECKPOINT_PERIOD = period
    logger.info(
        "%g epochs of %d images at batch %d: MAX_ITER=%d, STEPS=%s, EVAL_PERIOD=%d",
        epochs, n_images, cfg.SOLVER.IMS_PER_BATCH, max_iter, cfg.SOLVER.STEPS,
        cfg.TEST.EVAL_PERIOD,
    )


def apply_step_fractions(cfg: CfgNode) -> None:
    """With ``SOLVER.STEPS_FROM_FRACTIONS`` (and ``SOLVER.EPOCHS`` 0): set ``SOLVER.STEPS``
    to ``SOLVER.STEP_FRACTIONS`` of ``SOLVER.MAX_ITER``, so that an iteration config
    overridden with a new ``MAX_ITER`` alone keeps its lr drops at the same fractions
    (with fixed ``STEPS`` beyond the new length, :func:`fit_schedule` would drop them).

    Raises:
        DamaUserError: a fraction outside (0, 1), as for epoch schedules.
    """
    if not cfg.SOLVER.STEPS_FROM_FRACTIONS or float(cfg.SOLVER.EPOCHS) > 0:
        return
    steps = _steps_at_fractions(cfg)
    if steps != tuple(cfg.SOLVER.STEPS):
        logger.info("SOLVER.STEPS %s -> %s: SOLVER.STEP_FRACTIONS %s of MAX_ITER=%d",
                    tuple(cfg.SOLVER.STEPS), steps, tuple(cfg.SOLVER.STEP_FRACTIONS),
                    int(cfg.SOLVER.MAX_ITER))
    cfg.SOLVER.STEPS = steps


def _steps_at_fractions(cfg: CfgNode) -> tuple[int, ...]:
    """``SOLVER.STEP_FRACTIONS`` of ``SOLVER.MAX_ITER`` as iterations (epoch schedules and
    ``SOLVER.STEPS_FROM_FRACTIONS`` alike).

    Raises:
        DamaUserError: a fraction outside (0, 1) (e.g. percentages: its lr drop would
            lie past the end of training and be silently lost).
    """
    fractions = tuple(float(f) for f in cfg.SOLVER.STEP_FRACTIONS)
    if any(not 0.0 < f < 1.0 for f in fractions):
        raise DamaUserError(f"SOLVER.STEP_FRACTIONS must lie in (0, 1), got {fractions}")
    max_iter = int(cfg.SOLVER.MAX_ITER)
    return tuple(int(f * max_iter) for f in fractions)


def fit_schedule(cfg: CfgNode) -> None:
    """Make the iteration schedule valid for any ``SOLVER.MAX_ITER >= 1``.

    Detectron2's lr scheduler rejects lr steps at 0, at or past ``MAX_ITER``, or
    repeated; a short run (``SOLVER.MAX_ITER 1``, a compare description with
    ``iters: 1``) keeps the config's steps of a longer one. The steps inside
    ``(0, MAX_ITER)`` are kept (sorted, once each), the others dropped (logged), and the
    warm-up is cut to the run's length.

    Raises:
        DamaUserError: ``SOLVER.MAX_ITER`` below 1.
    """
    max_iter = int(cfg.SOLVER.MAX_ITER)
    if max_iter < 1:
        raise DamaUserError(f"SOLVER.MAX_ITER must be >= 1, got {max_iter}")
    steps = tuple(sorted({int(s) for s in cfg.SOLVER.STEPS if 0 < int(s) < max_iter}))
    if steps != tuple(cfg.SOLVER.STEPS):
        logger.info("SOLVER.STEPS %s -> %s for MAX_ITER=%d", tuple(cfg.SOLVER.STEPS), steps,
                    max_iter)
    cfg.SOLVER.STEPS = steps
    cfg.SOLVER.WARMUP_ITERS = min(int(cfg.SOLVER.WARMUP_ITERS), max_iter)


def apply_pixel_stats(cfg: CfgNode) -> None:
    """With ``INPUT.PIXEL_STATS == "train"``: set ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` to
    the per-channel mean / std of the scaled training images (at most
    ``INPUT.PIXEL_STATS_MAX_IMAGES``, a sample seeded by 0), then mark the config
    ``PIXEL_STATS: config`` so that the saved ``config.yaml`` keeps these values when it is
    loaded again (prediction, ``--eval-only``). Needs the training datasets registered.

    Raises:
        DamaUserError: unknown mode, or images whose channel count differs from
            ``len(MODEL.PIXEL_MEAN)``.
    """
    mode = str(cfg.INPUT.PIXEL_STATS).lower()
    if mode == "config":
        return
    if mode != "train":
        raise DamaUserError(f"INPUT.PIXEL_STATS: expected 'train' or 'config', got {mode!r}")
    from ..data.normalize import read_scaled_image
    from ..data.pixel_stats import pixel_stats

    channels = len(cfg.MODEL.PIXEL_MEAN)
    scaling, prange = cfg.INPUT.INTENSITY_SCALING, tuple(cfg.INPUT.PERCENTILE_RANGE)

    def load(path):
        return read_scaled_image(path, scaling, prange, expected_channels=channels)

    files = sorted({d["file_name"] for name in cfg.DATASETS.TRAIN
                    for d in DatasetCatalog.get(name)})
    mean, std = pixel_stats(files, load, max_images=int(cfg.INPUT.PIXEL_STATS_MAX_IMAGES))
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = mean, std
    cfg.INPUT.PIXEL_STATS = "config"
    logger.info("Input standardisation from %d training image(s): PIXEL_MEAN %s, PIXEL_STD %s",
                min(len(files), int(cfg.INPUT.PIXEL_STATS_MAX_IMAGES)), mean, std)


#: loggers that Detectron2's ``setup_logger`` gives a ``log.txt`` handler per run.
RUN_LOGGERS = ("detectron2", "dama_det", "fvcore")


def reset_run_loggers() -> None:
    """Forget the log handlers of an earlier run in this process.

    Detectron2's ``setup_logger`` is cached and only ever adds handlers, so a second
    training in one process (``dama-det compare`` / ``demo`` run every stage in-process)
    would also write its lines into the first run's ``log.txt``. Called before a run
    sets up its logs, so each ``OUTPUT_DIR/log.txt`` holds its own run only.
    """
    from detectron2.utils.logger import setup_logger

    for name in RUN_LOGGERS:
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            log.removeHandler(handler)
    setup_logger.cache_clear()


def setup_dama_logger(output_dir: str) -> logging.Logger:
    """Send dama_det's own log records (weights report, datasets, schedule) to the
    console and to ``OUTPUT_DIR/log.txt`` like Detectron2's."""
    from detectron2.utils import comm
    from detectron2.utils.file_io import PathManager
    from detectron2.utils.logger import setup_logger

    if comm.is_main_process() and output_dir:
        PathManager.mkdirs(output_dir)
    return setup_logger(output_dir or None, distributed_rank=comm.get_rank(), name="dama_det",
                        abbrev_name="dama")


def setup(args: TrainOptions | argparse.Namespace) -> CfgNode:
    """Full setup in one process (each DDP worker runs it): config, datasets, epoch
    schedule (made valid for the run's length), input standardisation, frozen config,
    Detectron2's ``default_setup`` (logging, config.yaml in OUTPUT_DIR, seeding).

    Returns:
        The frozen config.
    """
    cfg = build_cfg(args, resolve=False)
    requested_device = cfg.MODEL.DEVICE
    resolve_device(cfg)
    reset_run_loggers()
    setup_dama_logger(cfg.OUTPUT_DIR)
    register_datasets_from_cfg(cfg)
    apply_epoch_schedule(cfg)
    apply_step_fractions(cfg)
    fit_schedule(cfg)
    apply_pixel_stats(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    _save_portable_config(cfg, requested_device)
    return cfg


def _save_portable_config(cfg: CfgNode, requested_device: str) -> None:
    """Rewrite ``OUTPUT_DIR/config.yaml`` with the device as requested ("auto"), so that
    a model trained on a GPU can be loaded on a CPU-only machine from this file."""
    from detectron2.utils import comm

    from ..utils import atomic_write_bytes

    if not comm.is_main_process() or not cfg.OUTPUT_DIR:
        return
    saved = cfg.clone()
    saved.defrost()
    saved.MODEL.DEVICE = requested_device
    atomic_write_bytes(Path(cfg.OUTPUT_DIR) / "config.yaml", saved.dump().encode("utf-8"))
