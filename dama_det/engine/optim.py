"""Optimizer with ViTDet's layer-wise learning-rate decay, built from the config.

Parameter groups come from Detectron2's ``get_default_optimizer_params`` with
``lr_factor_func = partial(get_vit_lr_decay_rate, lr_decay_rate=LAYER_DECAY,
num_layers=DEPTH)``: block ``i`` of the ViT gets ``decay ** (DEPTH - i)`` of the base
lr, the patch/position embeddings ``decay ** (DEPTH + 1)``, everything after the ViT
(pyramid, RPN, ROI heads) the full lr. No weight decay on norms, position embeddings
and relative-position tables.
"""
from __future__ import annotations

import logging
from functools import partial

import torch
from detectron2.config import CfgNode
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

from ..errors import DamaUserError

logger = logging.getLogger(__name__)

NO_DECAY_PARAMS = ("pos_embed", "rel_pos_h", "rel_pos_w")


def build_dama_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW (or SGD) over layer-decayed parameter groups.

    Args:
        cfg: training config (``SOLVER.*``, ``MODEL.DAMA_VIT.LAYER_DECAY`` and ``DEPTH``).
        model: the detector (parameter names ``backbone.net.blocks.{i}...`` are decayed).

    Returns:
        The optimizer (with Detectron2's gradient clipping when
        ``SOLVER.CLIP_GRADIENTS.ENABLED``).
    """
    decay = float(cfg.MODEL.DAMA_VIT.LAYER_DECAY)
    lr_factor = None
    if decay != 1.0:
        lr_factor = partial(
            get_vit_lr_decay_rate, lr_decay_rate=decay, num_layers=cfg.MODEL.DAMA_VIT.DEPTH
        )
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        lr_factor_func=lr_factor,
        overrides={name: {"weight_decay": 0.0} for name in NO_DECAY_PARAMS},
    )
    name = cfg.SOLVER.OPTIMIZER.lower()
    if name == "adamw":
        cls, kwargs = torch.optim.AdamW, {"betas": tuple(cfg.SOLVER.BETAS)}
    elif name == "sgd":
        cls = torch.optim.SGD
        kwargs = {"momentum": cfg.SOLVER.MOMENTUM, "nesterov": cfg.SOLVER.NESTEROV}
    else:
        raise DamaUserError(f"SOLVER.OPTIMIZER: unknown optimizer {cfg.SOLVER.OPTIMIZER!r} "
                            "(choose AdamW or SGD)")
    optimizer = maybe_add_gradient_clipping(cfg, cls)(params, lr=cfg.SOLVER.BASE_LR, **kwargs)
    lrs = sorted({round(g["lr"], 12) for g in optimizer.param_groups})
    logger.info("%s with %d parameter groups, layer decay %.3g: lr from %.3g to %.3g",
                cls.__name__, len(optimizer.param_groups), decay, lrs[0], lrs[-1])
    return optimizer
