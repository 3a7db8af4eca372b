"""The detection backbone: Detectron2's ViTDet ViT wrapped in its SimpleFeaturePyramid.

Nothing here re-implements ViT or the pyramid; it only builds them from
``cfg.MODEL.DAMA_VIT`` for an N-channel input and, when
``MODEL.DAMA_VIT.ENCODER_WEIGHTS`` names a pretraining export, loads it into the ViT.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import SimpleFeaturePyramid, ViT
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from ..encoder_export.format import load_encoder_export
from ..errors import DamaUserError
from .encoder_weights import load_encoder_into_vit
from .frozen_encoder import freeze_vit
from .pixel_stem import PixelDetailStem

logger = logging.getLogger(__name__)

__all__ = [
    "DamaFeaturePyramid",
    "build_dama_vit",
    "build_dama_vit_fpn_backbone",
    "pretrain_img_size",
    "redraw_vit_weights",
    "resolve_pretrain_img_size",
]


def pretrain_img_size(cfg: CfgNode) -> int:
    """The ViT's stored position-embedding size: ``MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE``, or
    when that is 0, the ``img_size`` of the ``ENCODER_WEIGHTS`` export (else ``IMG_SIZE``).
    """
    v = cfg.MODEL.DAMA_VIT
    if v.PRETRAIN_IMG_SIZE > 0:
        return int(v.PRETRAIN_IMG_SIZE)
    if v.ENCODER_WEIGHTS:
        return int(load_encoder_export(v.ENCODER_WEIGHTS)["img_size"])
    return int(v.IMG_SIZE)


def resolve_pretrain_img_size(cfg: CfgNode) -> int:
    """Write :func:`pretrain_img_size` into ``cfg`` (in place, so saved configs and
    checkpoints agree on the ``pos_embed`` shape) and return it."""
    cfg.MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE = pretrain_img_size(cfg)
    return cfg.MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE


class DamaFeaturePyramid(SimpleFeaturePyramid):
    """Detectron2's ``SimpleFeaturePyramid``, for inputs of any size.

    Its coarsest level (stride :attr:`min_input_size`, e.g. 32 = patch 16 / scale 0.5)
    needs an input at least that large: smaller images (a 3 x 3 validation image, a
    20 px tile) fail inside the convolutions. Such inputs are zero-padded at the bottom
    and right to that size, as Detectron2's ``ImageList`` pads a batch; the image sizes
    the detector clips its boxes to stay the true ones, so the predictions cover the
    original pixels only. Larger inputs are unchanged.

    With :meth:`add_detail_stem`, a :class:`PixelDetailStem` computed from the same
    (padded) image is added to the finest level.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.detail_stem: PixelDetailStem | None = None

    @property
    def finest_level(self) -> str:
        """Name of the highest-resolution output level (``"p2"`` for the default scales)."""
        return self._out_features[0]

    def add_detail_stem(self, in_chans: int, channels: int, norm: str) -> None:
        """Attach a :class:`PixelDetailStem` of ``channels`` width whose output is added to
        :attr:`finest_level` (it starts at zero, so the pyramid's output is unchanged)."""
        level = self.finest_level
        self.detail_stem = PixelDetailStem(
            in_chans, channels, self._out_feature_channels[level],
            stride=self._out_feature_strides[level], norm=norm,
        )

    @property
    def min_input_size(self) -> int:
        """The smallest input side the pyramid computes every level for."""
        return int(self._size_divisibility)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, C, H, W)`` as the ViT receives it: zero-padded at the bottom and
        right to :attr:`min_input_size` if H or W is smaller, else unchanged."""
        height, width = x.shape[-2:]
        size = self.min_input_size
        if height < size or width < size:
            x = F.pad(x, (0, max(0, size - width), 0, max(0, size - height)))
        return x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pyramid of ``x`` ``(N, C, H, W)``, padded first if H or W is too small."""
        x = self.encoder_input(x)
        out = super().forward(x)
        if self.detail_stem is not None:
            level = out[self.finest_level]
            out[self.finest_level] = level + self.detail_stem(x, tuple(level.shape[-2:]))
        return out


def build_dama_vit(cfg: CfgNode, in_chans: int) -> ViT:
    """Build the plain ViT encoder described by ``cfg.MODEL.DAMA_VIT``.

    Args:
        cfg: config with dama_det keys.
        in_chans: number of input image channels C.

    Returns:
        Detectron2 ``ViT`` whose output ``"last_feat"`` is ``(N, D, H/p, W/p)``.
    """
    v = cfg.MODEL.DAMA_VIT
    if v.EMBED_DIM % v.NUM_HEADS:
        raise DamaUserError(
            f"MODEL.DAMA_VIT.EMBED_DIM={v.EMBED_DIM} is not divisible by NUM_HEADS={v.NUM_HEADS}"
        )
    bad = [i for i in v.GLOBAL_BLOCK_INDEXES if not 0 <= i < v.DEPTH]
    if bad:
        raise DamaUserError(
            f"MODEL.DAMA_VIT.GLOBAL_BLOCK_INDEXES {list(v.GLOBAL_BLOCK_INDEXES)} has indexes "
            f"outside 0..{v.DEPTH - 1} (DEPTH={v.DEPTH})"
        )
    pos_size = pretrain_img_size(cfg)
    if pos_size % v.PATCH_SIZE:
        raise DamaUserError(
            f"MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE={pos_size} is not a multiple of "
            f"PATCH_SIZE={v.PATCH_SIZE}"
        )
    window_blocks = [i for i in range(v.DEPTH) if i not in set(v.GLOBAL_BLOCK_INDEXES)]
    return ViT(
        img_size=v.IMG_SIZE,
        patch_size=v.PATCH_SIZE,
        in_chans=in_chans,
        embed_dim=v.EMBED_DIM,
        depth=v.DEPTH,
        num_heads=v.NUM_HEADS,
        mlp_ratio=v.MLP_RATIO,
        qkv_bias=v.QKV_BIAS,
        drop_path_rate=v.DROP_PATH_RATE,
        use_abs_pos=v.USE_ABS_POS,
        use_rel_pos=v.USE_REL_POS,
        window_size=v.WINDOW_SIZE,
        window_block_indexes=window_blocks if v.WINDOW_SIZE > 0 else (),
        pretrain_img_size=pos_size,
        pretrain_use_cls_token=v.PRETRAIN_USE_CLS_TOKEN,
        out_feature="last_feat",
    )


def redraw_vit_weights(vit: ViT, cfg: CfgNode, in_chans: int, seed: int) -> None:
    """Replace ``vit``'s initial weights by a second draw of detectron2's initialisation
    under ``seed`` (``MODEL.DAMA_VIT.INIT_SEED``), leaving the global random stream as it
    was: the heads' weights, the data order and drop path are those of the run without it.

    That makes the A/A control of ``dama-det compare`` (method ``redraw``): a detector
    that differs from random init only in the encoder's starting weights, as the untrained
    export ``init`` does.

    Args:
        vit: the freshly built ViT (weights replaced in place).
        cfg: config with dama_det keys (the ViT's architecture).
        in_chans: number of input image channels C.
        seed: the seed of the second draw.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vit.load_state_dict(build_dama_vit(cfg, in_chans).state_dict())
    logger.info("ViT weights redrawn under MODEL.DAMA_VIT.INIT_SEED=%d", seed)


@BACKBONE_REGISTRY.register()
def build_dama_vit_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> SimpleFeaturePyramid:
    """ViT + simple feature pyramid (p2..p5 from scales 4, 2, 1, 0.5; p6 by max-pool),
    padding inputs smaller than its coarsest stride (:class:`DamaFeaturePyramid`), with a
    pixel-detail stem added to p2 when ``MODEL.DAMA_VIT.DETAIL_STEM_CHANNELS > 0``.

    Select with ``MODEL.BACKBONE.NAME: build_dama_vit_fpn_backbone``. The input
    channel count comes from ``input_shape.channels`` (= ``len(MODEL.PIXEL_MEAN)``).
    If ``MODEL.DAMA_VIT.ENCODER_WEIGHTS`` is set, that pretraining export is loaded
    into the ViT (see ``dama_det.modeling.encoder_weights``); ``MODEL.DAMA_VIT.FROZEN_BLOCKS``
    then freezes its first blocks or all of it (``dama_det.modeling.frozen_encoder``).

    Args:
        cfg: config with dama_det keys.
        input_shape: ``ShapeSpec(channels=C)``.

    Returns:
        Backbone whose forward maps ``(N, C, H, W)`` to
        ``{"p2": (N, 256, H/4, W/4), ..., "p6": (N, 256, H/64, W/64)}``.
    """
    v = cfg.MODEL.DAMA_VIT
    vit = build_dama_vit(cfg, in_chans=input_shape.channels)
    if v.INIT_SEED >= 0:
        redraw_vit_weights(vit, cfg, input_shape.channels, v.INIT_SEED)
    if v.ENCODER_WEIGHTS:
        load_encoder_into_vit(vit, v.ENCODER_WEIGHTS, skip=list(v.ENCODER_SKIP_KEYS))
    freeze_vit(vit, v.FROZEN_BLOCKS)
    scale_factors = tuple(float(s) for s in v.SCALE_FACTORS)
    backbone = DamaFeaturePyramid(
        net=vit,
        in_feature="last_feat",
        out_channels=v.OUT_CHANNELS,
        scale_factors=scale_factors,
        top_block=LastLevelMaxPool(),
        norm=v.FPN_NORM,
        square_pad=v.SQUARE_PAD,
    )
    # LastLevelMaxPool reads the coarsest pyramid level (p5 for the default scales).
    backbone.top_block.in_feature = backbone._out_features[len(scale_factors) - 1]
    if v.DETAIL_STEM_CHANNELS > 0:
        try:
            backbone.add_detail_stem(input_shape.channels, v.DETAIL_STEM_CHANNELS, v.FPN_NORM)
        except ValueError as exc:  # the stem's stride check, told in config keys
            stride = backbone._out_feature_strides[backbone.finest_level]
            raise DamaUserError(
                f"MODEL.DAMA_VIT.DETAIL_STEM_CHANNELS needs the finest pyramid level at a "
                f"power-of-two stride >= 2; PATCH_SIZE={v.PATCH_SIZE} and SCALE_FACTORS="
                f"{list(v.SCALE_FACTORS)} give {stride}"
            ) from exc
    return backbone
