"""``DamaTrainer``: Detectron2's ``DefaultTrainer`` for N-channel cell images.

What it changes: the N-channel dataset mapper (LSJ scale jitter + crop, flips,
rotations) for training and evaluation, AdamW with layer-wise lr decay, the training
step (fp32 / CUDA AMP / CPU bf16), DDP on CPU (gloo) as well as CUDA, COCO evaluation
with ``maxDets`` large enough for hundreds of cells, a validation-loss hook and the
best checkpoint by segmentation AP (``model_best.pth``). Checkpoints (written
atomically, :class:`~dama_det.engine.checkpoint.DamaCheckpointer`), TensorBoard events
and ``metrics.json`` go to ``OUTPUT_DIR`` as in Detectron2.
"""
from __future__ import annotations

import logging
import os
import weakref

import torch
from detectron2.config import CfgNode
from detectron2.data import (
    DatasetCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import DefaultTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from .. import modeling  # noqa: F401  (registers build_dama_vit_fpn_backbone)
from ..data.mapper import NChannelDatasetMapper
from .checkpoint import DamaCheckpointer
from .evaluators import build_evaluator
from .hooks import ValidationLossHook
from .optim import build_dama_optimizer
from .train_loop import build_train_loop

logger = logging.getLogger(__name__)


class DamaTrainer(DefaultTrainer):
    """Train / evaluate Mask R-CNN with the DAMA ViT backbone from a dama_det config.

    Example::

        cfg = setup(args)                 # dama_det.engine.setup
        trainer = DamaTrainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
    """

    def __init__(self, cfg: CfgNode):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        ddp_kwargs = {"broadcast_buffers": False}
        if torch.device(cfg.MODEL.DEVICE).type != "cuda":
            ddp_kwargs["device_ids"] = None  # CPU processes (gloo)
        model = create_ddp_model(model, **ddp_kwargs)
        self._trainer = build_train_loop(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DamaCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ parts

    @classmethod
    def build_model(cls, cfg: CfgNode) -> torch.nn.Module:
        """Detectron2's ``build_model``; loads ``MODEL.DAMA_VIT.ENCODER_WEIGHTS`` if set."""
        from detectron2.modeling import build_model

        model = build_model(cfg)
        n_params = sum(p.numel() for p in model.parameters())
        logger.info("Model with %.2fM parameters on %s", n_params / 1e6, cfg.MODEL.DEVICE)
        return model

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        return build_dama_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        return build_detection_train_loader(cfg, mapper=NChannelDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        return build_detection_test_loader(
            cfg, dataset_name, mapper=NChannelDatasetMapper(cfg, is_train=False)
        )

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None):
        """The evaluator of ``TEST.EVALUATOR``, with AP at ``maxDets =
        TEST.DETECTIONS_PER_IMAGE`` so images with hundreds of cells are scored fully.

        The names are those of :mod:`.evaluators` ("cell", the default: the COCO
        numbers through faster-coco-eval plus the cell matching metrics; "coco":
        detectron2's COCOEvaluator).
        """
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        max_dets = max(int(cfg.TEST.DETECTIONS_PER_IMAGE), 11)
        return build_evaluator(cfg, dataset_name, output_folder, max_dets)

    @classmethod
    def build_val_loss_loader(cls, cfg: CfgNode):
        """Validation batches with annotations for the loss hook.

        Uses the training mapper with scale jitter fixed to 1 and no flips/rotations
        (a fixed-size crop/pad only), over at most ``TEST.VAL_LOSS_MAX_IMAGES`` images
        of the first test set.
        """
        vcfg = cfg.clone()
        vcfg.defrost()
        vcfg.INPUT.LSJ.SCALE_RANGE = (1.0, 1.0)
        vcfg.INPUT.HFLIP = vcfg.INPUT.VFLIP = vcfg.INPUT.ROT90 = False
        dicts = DatasetCatalog.get(cfg.DATASETS.TEST[0])[: max(1, cfg.TEST.VAL_LOSS_MAX_IMAGES)]
        dicts = [d for d in dicts if d.get("annotations")]
        batch = max(1, cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size())
        return build_detection_test_loader(
            dataset=dicts, mapper=NChannelDatasetMapper(vcfg, is_train=True),
            batch_size=batch, num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    # ------------------------------------------------------------------ hooks

    def best_metric_key(self) -> str:
        """Storage key of ``TEST.BEST_METRIC`` (prefixed by the dataset name when
        several test sets are evaluated)."""
        metric = self.cfg.TEST.BEST_METRIC
        if len(self.cfg.DATASETS.TEST) > 1:
            metric = f"{self.cfg.DATASETS.TEST[0]}/{metric}"
        return metric

    def build_hooks(self) -> list:
        """Detectron2's default hooks plus validation loss and best checkpoint.

        Order: timer, lr scheduler, periodic checkpointer, evaluation, best
        checkpointer, validation loss, writers (last, so they record the metrics).
        """
        ret = super().build_hooks()
        writer = ret.pop() if comm.is_main_process() else None
        cfg = self.cfg
        if cfg.DATASETS.TEST:
            if comm.is_main_process() and cfg.TEST.BEST_METRIC:
                ret.append(
                    hooks.BestCheckpointer(
                        cfg.TEST.EVAL_PERIOD, self.checkpointer, self.best_metric_key(), "max"
                    )
                )
            period = cfg.TEST.VAL_LOSS_PERIOD or cfg.TEST.EVAL_PERIOD
            ret.append(ValidationLossHook(period, lambda: self.build_val_loss_loader(self.cfg)))
        if writer is not None:
            ret.append(writer)
        return ret
