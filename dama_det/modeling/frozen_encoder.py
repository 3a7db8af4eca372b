"""Freezing the detector's ViT, whole or its first blocks (``MODEL.DAMA_VIT.FROZEN_BLOCKS``).

A frozen encoder is the detection counterpart of a frozen-feature probe: the pyramid,
RPN and ROI heads learn on top of the encoder's features as they were loaded (a
pretraining export, its untrained twin, or detectron2's random draw), so what the
pretraining learnt cannot be rewritten by fine-tuning. Freezing covers the patch
embedding, the absolute position table and the first ``k`` transformer blocks; their
parameters stop requiring gradients (so the optimizer leaves them out, see
``get_default_optimizer_params``) and their stochastic depth is switched off, so a
frozen part computes the same features at every step.
"""
from __future__ import annotations

import logging

from detectron2.modeling.backbone import ViT
from torch import nn

from ..errors import DamaUserError

logger = logging.getLogger(__name__)

__all__ = ["freeze_vit", "frozen_block_count"]


def frozen_block_count(frozen_blocks: int, depth: int) -> int:
    """How many leading blocks ``MODEL.DAMA_VIT.FROZEN_BLOCKS`` freezes.

    Args:
        frozen_blocks: the config value: 0 = nothing frozen, ``k`` in 1..depth = the patch
            embedding, position table and blocks ``0..k-1``, -1 = the whole ViT.
        depth: the ViT's number of blocks (``MODEL.DAMA_VIT.DEPTH``).

    Returns:
        The number of frozen blocks, 0..depth.

    Raises:
        DamaUserError: for a value outside -1..depth.
    """
    if frozen_blocks == -1:
        return depth
    if not 0 <= frozen_blocks <= depth:
        raise DamaUserError(
            f"MODEL.DAMA_VIT.FROZEN_BLOCKS={frozen_blocks} must be -1 (the whole ViT), 0 "
            f"(nothing frozen) or a block count up to DEPTH={depth}"
        )
    return frozen_blocks


def freeze_vit(vit: ViT, frozen_blocks: int) -> list[str]:
    """Freeze ``vit``'s patch embedding, position table and first blocks, in place.

    Args:
        vit: Detectron2 ``ViT`` (its weights already loaded).
        frozen_blocks: ``MODEL.DAMA_VIT.FROZEN_BLOCKS`` (see :func:`frozen_block_count`).

    Returns:
        The names of the parameters frozen (empty when ``frozen_blocks`` is 0).
    """
    count = frozen_block_count(frozen_blocks, len(vit.blocks))
    if count == 0:
        return []
    parts: list[tuple[str, nn.Module]] = [("patch_embed", vit.patch_embed)]
    parts += [(f"blocks.{i}", vit.blocks[i]) for i in range(count)]
    names = []
    for prefix, module in parts:
        for name, param in module.named_parameters():
            param.requires_grad_(False)
            names.append(f"{prefix}.{name}")
        if hasattr(module, "drop_path"):
            module.drop_path = nn.Identity()
    if vit.pos_embed is not None:
        vit.pos_embed.requires_grad_(False)
        names.append("pos_embed")
    logger.info("Froze the ViT's patch embedding, position table and %d of %d blocks "
                "(%d parameter tensors)", count, len(vit.blocks), len(names))
    return names
