"""Mask R-CNN predictor for N-channel float tiles, returning compact crop detections.

Builds the model from a config with Detectron2's ``build_model`` and loads a training
checkpoint with :func:`dama_det.engine.checkpoint.load_checkpoint_strict` (refusing
checkpoints that do not fit the config), runs it in eval mode under
``torch.inference_mode`` with optional autocast, and pastes each predicted 28 x 28 mask
only into the instance's own box (never a full-tile mask per instance).
"""
from __future__ import annotations

import logging
import math
import os
from typing import Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.layers.mask_ops import _do_paste_mask

from .. import modeling  # noqa: F401  (registers build_dama_vit_fpn_backbone)
from ..engine.checkpoint import load_checkpoint_strict
from ..errors import DamaUserError
from ..utils import autocast_context, pick_device, resolve_amp_dtype
from .batched_encoder import EncoderBatcher
from .flip_tta import BOX_VOTE_IOU, TTA_MODES, FlipTTA
from .types import Detection

logger = logging.getLogger(__name__)

# Pixels pasted per chunk when turning mask logits into crops (bounds memory).
PASTE_CHUNK_PIXELS = 8_000_000


def prepare_inference_config(
    cfg: CfgNode, *, score_thresh: float | None = None, tile_size: int | None = None,
    device: torch.device | str = "cpu",
) -> CfgNode:
    """A frozen copy of a training config set up for prediction.

    Drops the pretraining export and the ViT's redraw seed (``INIT_SEED``): the
    checkpoint holds all weights, so neither would change them and the redraw would
    only cost a second ViT build. Sets the device and score threshold, and widens
    ``MODEL.DAMA_VIT.SQUARE_PAD`` to the tile size if it is smaller (ViTDet pads every
    input to that square).

    Args:
        cfg: a config with dama_det keys (as used for training).
        score_thresh: ``MODEL.ROI_HEADS.SCORE_THRESH_TEST`` override.
        tile_size: the largest input side that will be fed to the model.
        device: the device the model will run on.

    Returns:
        The new, frozen config.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = str(device)
    cfg.MODEL.WEIGHTS = ""
    vit = cfg.MODEL.get("DAMA_VIT", None)
    if vit is not None:
        if "ENCODER_WEIGHTS" in vit:
            vit.ENCODER_WEIGHTS = ""
        if "INIT_SEED" in vit:
            vit.INIT_SEED = -1
        if tile_size and vit.get("SQUARE_PAD", 0) and vit.SQUARE_PAD < tile_size:
            div = max(int(vit.get("PATCH_SIZE", 16)), 32)
            vit.SQUARE_PAD = int(math.ceil(tile_size / div) * div)
    if score_thresh is not None:
        if not 0.0 <= score_thresh <= 1.0:
            raise DamaUserError(f"--score-thresh must be in [0, 1], got {score_thresh}")
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_thresh)
    cfg.freeze()
    return cfg


def instances_to_detections(
    boxes: torch.Tensor, scores: torch.Tensor, mask_probs: torch.Tensor,
    height: int, width: int, mask_threshold: float = 0.5,
) -> list[Detection]:
    """Paste low-resolution mask predictions into per-instance crops.

    Args:
        boxes: ``(N, 4)`` float XYXY boxes in tile pixels.
        scores: ``(N,)`` confidences.
        mask_probs: ``(N, M, M)`` mask probabilities (e.g. M = 28).
        height: tile height (boxes are clipped to it).
        width: tile width.
        mask_threshold: probability above which a pixel belongs to the instance.

    Returns:
        Non-empty detections with tight integer boxes.
    """
    if len(boxes) == 0:
        return []
    boxes = boxes.float()
    mask_probs = mask_probs.float()
    x0 = boxes[:, 0].floor().clamp(0, width)
    y0 = boxes[:, 1].floor().clamp(0, height)
    x1 = boxes[:, 2].ceil().clamp(0, width)
    y1 = boxes[:, 3].ceil().clamp(0, height)
    ws, hs = (x1 - x0).long().tolist(), (y1 - y0).long().tolist()
    shifted = boxes - torch.stack([x0, y0, x0, y0], dim=1)  # box relative to its crop
    x0s, y0s, score_list = x0.long().tolist(), y0.long().tolist(), scores.float().tolist()
    order = sorted(range(len(ws)), key=lambda i: ws[i] * hs[i])
    out: list[Detection] = []
    start = 0
    while start < len(order):
        # grow the chunk while the padded (hmax, wmax) paste canvas stays within budget
        hmax, wmax, end = hs[order[start]], ws[order[start]], start + 1
        while end < len(order):
            h2, w2 = max(hmax, hs[order[end]]), max(wmax, ws[order[end]])
            if (end + 1 - start) * h2 * w2 > PASTE_CHUNK_PIXELS:
                break
            hmax, wmax, end = h2, w2, end + 1
        idx = order[start:end]
        start = end
        if hmax == 0 or wmax == 0:
            continue
        # Detectron2's paste (the exact per-pixel sampling of paste_masks_in_image), for
        # the whole chunk at once into a (hmax, wmax) canvas per instance
        probs, _ = _do_paste_mask(mask_probs[idx][:, None], shifted[idx], hmax, wmax,
                                  skip_empty=False)
        pasted = (probs >= mask_threshold).cpu().numpy()
        for k, i in enumerate(idx):
            crop = pasted[k, : hs[i], : ws[i]]
            rows, cols = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
            if rows.size == 0:
                continue
            r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            out.append(Detection((x0s[i] + c0, y0s[i] + r0, x0s[i] + c1, y0s[i] + r1),
                                 np.ascontiguousarray(crop[r0:r1, c0:c1]), score_list[i]))
    return out


class MaskRCNNTilePredictor:
    """Run a Detectron2 Mask R-CNN on ``(C, h, w)`` float tiles.

    Tiles must already be scaled as the dataset mapper scales images
    (:func:`dama_det.data.normalize.scale_intensities`); the model subtracts
    ``PIXEL_MEAN`` and divides by ``PIXEL_STD`` itself. Usable as the per-tile
    predictor of :func:`dama_det.inference.tiling.predict_image_tiled`; its
    ``predict_batch`` runs several tiles per encoder forward with the results of one
    tile per forward, bit for bit.

    Args:
        model: a built Detectron2 ``GeneralizedRCNN`` (put in eval mode here).
        device: where the model lives.
        amp_dtype: autocast dtype (``torch.bfloat16`` / ``torch.float16``) or None.
        mask_threshold: mask probability threshold.
        tta: test-time augmentation, one of :data:`~.flip_tta.TTA_MODES` ("flip": each
            tile and its three flips, boxes and scores voted over the views, masks
            averaged; "flip-nms": boxes and scores by NMS only; see :mod:`.flip_tta`);
            needs ``cfg``.
        cfg: the model's config (needed for ``tta``; kept as ``self.cfg``).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device,
                 amp_dtype: torch.dtype | None = None, mask_threshold: float = 0.5,
                 tta: str = "off", cfg: CfgNode | None = None):
        self.model = model.eval()
        self.device = device
        self.amp_dtype = amp_dtype
        self.mask_threshold = mask_threshold
        self.num_channels = int(model.pixel_mean.numel())
        self.batcher = EncoderBatcher(self.model)
        self.cfg = cfg
        self.tta = None
        if tta not in TTA_MODES:
            raise DamaUserError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
        if tta != "off":
            if cfg is None:
                raise ValueError("test-time augmentation needs the model's config")
            self.tta = FlipTTA(cfg, self.model, box_vote=BOX_VOTE_IOU if tta == "flip" else 0)

    @classmethod
    def from_config(
        cls, cfg: CfgNode, weights: str | os.PathLike | None, *, device: str | None = "auto",
        amp: str = "auto", score_thresh: float | None = None, tile_size: int | None = None,
        tta: str = "off",
    ) -> "MaskRCNNTilePredictor":
        """Build the model of ``cfg`` and load ``weights``.

        Args:
            cfg: config with dama_det keys (e.g. from :func:`dama_det.config` loading).
            weights: training checkpoint; None keeps random weights (tests/benchmarks).
            device: "auto", "cpu", "cuda", "cuda:1".
            amp: "auto", "bf16", "fp16" or "off" (see :func:`resolve_amp_dtype`).
            score_thresh: minimum detection score.
            tile_size: largest tile side that will be predicted.
            tta: test-time augmentation (:data:`~.flip_tta.TTA_MODES`).

        Returns:
            The predictor.
        """
        from detectron2.modeling import build_model

        dev = pick_device(device)
        amp_dtype = resolve_amp_dtype(amp, dev, bf16_on_native_cpu=True)
        cfg = prepare_inference_config(cfg, score_thresh=score_thresh, tile_size=tile_size,
                                       device=dev)
        model = build_model(cfg)
        if weights is not None:
            load_checkpoint_strict(model, weights)
        return cls(model, dev, amp_dtype, tta=tta, cfg=cfg)

    def predict_batch(self, tiles: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Predict several tiles, bit-identical to predicting them one at a time.

        Tiles of one size share one encoder forward (:class:`EncoderBatcher`); the
        feature pyramid, RPN and RoI heads run tile by tile, so every tile gets exactly
        the detections of its own single-tile forward. With test-time augmentation every
        tile runs alone (its four views form the batch).

        Args:
            tiles: float32 arrays ``(C, h, w)`` (sizes may differ; each size is batched
                separately).

        Returns:
            One list of detections (tile coordinates) per tile, in the order of ``tiles``.
        """
        inputs = []
        for t in tiles:
            if t.ndim != 3 or t.shape[0] != self.num_channels:
                raise DamaUserError(
                    f"the model expects {self.num_channels} channels, got a tile of shape "
                    f"{tuple(t.shape)}"
                )
            tensor = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32))
            inputs.append({"image": tensor.to(self.device), "height": t.shape[1],
                           "width": t.shape[2]})
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(tiles):
            by_size.setdefault(tuple(t.shape), []).append(i)
        results: list = [None] * len(tiles)
        with torch.inference_mode(), autocast_context(self.device, self.amp_dtype):
            for idx in by_size.values():
                if self.tta is not None:
                    for i in idx:
                        results[i] = self.tta.predict(inputs[i])
                    continue
                for i, inst in zip(idx, self.batcher([inputs[i] for i in idx])):
                    results[i] = inst
        out = []
        for t, inst in zip(tiles, results):
            h, w = t.shape[1:]
            if not inst.has("pred_masks"):
                raise DamaUserError("the model predicts no masks (set MODEL.MASK_ON: True)")
            out.append(instances_to_detections(
                inst.pred_boxes.tensor, inst.scores, inst.pred_masks[:, 0], h, w,
                self.mask_threshold))
        return out

    def __call__(self, tile: np.ndarray) -> list[Detection]:
        """Predict one ``(C, h, w)`` tile; returns detections in tile coordinates."""
        return self.predict_batch([tile])[0]
