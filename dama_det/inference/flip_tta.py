"""Flip test-time augmentation for the tile predictor (``dama-det predict --tta``).

Cells have no preferred orientation and the detector trains with random horizontal and
vertical flips (``INPUT.HFLIP`` / ``VFLIP``), so a tile and its three flips are equally
valid views. :class:`FlipTTA` is Detectron2's ``GeneralizedRCNNWithTTA`` with those four
views instead of its resize + horizontal-flip mapper:

1. boxes are detected on every view and mapped back to the tile;
2. the union is reduced by class-wise NMS (``MODEL.ROI_HEADS.NMS_THRESH_TEST``), as
   Detectron2 does; with ``box_vote`` > 0 (mode "flip") every kept box then takes a vote
   of the views (:func:`vote_over_views`): each view's best box overlapping it by IoU >=
   ``box_vote`` counts, the box becomes their score-weighted mean and the score their
   mean over the four views (0 for a view that does not see it), so an instance found in
   one view only scores a quarter. Without the vote ("flip-nms", Detectron2's merge) an
   instance keeps its best box and score, and what one view alone finds survives;
3. the mask head runs on the kept boxes in every view and the four ``(M, M)`` mask
   probability maps, flipped back, are averaged.

Unlike Detectron2's class it stops before pasting: :meth:`FlipTTA.predict` returns the
boxes, scores and low-resolution mask probabilities that
:func:`~.predictor.instances_to_detections` pastes into per-instance crops. It costs
about four forward passes per tile.
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.data.transforms import HFlipTransform, TransformList, VFlipTransform
from detectron2.modeling import GeneralizedRCNNWithTTA
from detectron2.structures import Boxes, Instances, pairwise_iou

from .options import TTA_MODES

__all__ = ["TTA_MODES", "FlipTTA", "flip_views", "vote_over_views"]

#: IoU with a kept box above which a view's box takes part in its vote (Detectron's
#: TEST.BBOX_VOTE.VOTE_TH)
BOX_VOTE_IOU = 0.8


def flip_views(inputs: dict) -> list[dict]:
    """The identity, horizontal, vertical and both flips of one model input.

    Args:
        inputs: ``{"image": (C, H, W) tensor, "height": H, "width": W}``.

    Returns:
        Four copies of ``inputs`` with the flipped image and, under ``"transforms"``, the
        ``TransformList`` that maps tile coordinates to the view's.
    """
    image = inputs["image"]
    h, w = image.shape[-2:]
    views = []
    for hflip, vflip in ((False, False), (True, False), (False, True), (True, True)):
        tfms, view = [], image
        if hflip:
            tfms.append(HFlipTransform(w))
            view = view.flip(-1)
        if vflip:
            tfms.append(VFlipTransform(h))
            view = view.flip(-2)
        views.append({**inputs, "image": view, "transforms": TransformList(tfms)})
    return views


def vote_over_views(kept: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                    views: torch.Tensor, n_views: int, iou: float = BOX_VOTE_IOU
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Let every view vote on each kept box: its best box overlapping the kept one.

    Args:
        kept: ``(K, 4)`` XYXY boxes that survived NMS.
        boxes: ``(N, 4)`` all candidate boxes (every view, tile coordinates).
        scores: ``(N,)`` their scores.
        views: ``(N,)`` the view (0 .. n_views - 1) each candidate comes from.
        n_views: number of views.
        iou: minimum IoU with a kept box for a candidate to vote for it.

    Returns:
        ``(boxes, scores)``: ``(K, 4)`` the score-weighted mean of the voting boxes (one
        per view at most: its highest-scoring one) and ``(K,)`` the sum of their scores
        divided by ``n_views`` (a view without a voting box adds 0).
    """
    if len(kept) == 0:
        return kept, scores.new_zeros(0)
    overlap = pairwise_iou(Boxes(kept), Boxes(boxes)) >= iou  # (K, N)
    weights = overlap * scores[None].float()
    total = torch.zeros(len(kept), dtype=torch.float32, device=kept.device)
    weighted = torch.zeros(len(kept), 4, dtype=torch.float32, device=kept.device)
    for v in range(n_views):
        cols = torch.nonzero(views == v).flatten()
        if len(cols) == 0:
            continue
        best, idx = weights[:, cols].max(1)  # (K,): the view's best voter (0: none)
        total += best
        weighted += best[:, None] * boxes[cols][idx].float()
    voted = torch.where(total[:, None] > 0, weighted / total.clamp(min=1e-12)[:, None],
                        kept.float())
    return voted.to(kept.dtype), total / n_views


class FlipTTA(GeneralizedRCNNWithTTA):
    """Four-flip test-time augmentation of a Detectron2 Mask R-CNN.

    Args:
        cfg: the model's config (``MODEL.ROI_HEADS.NMS_THRESH_TEST``,
            ``TEST.DETECTIONS_PER_IMAGE``, ``MODEL.ROI_HEADS.NUM_CLASSES``).
        model: a built ``GeneralizedRCNN`` in eval mode (standard or cascade heads).
        box_vote: IoU with a kept instance above which a view's box votes on its box and
            score (mode "flip"); 0 keeps NMS's boxes and scores (mode "flip-nms",
            Detectron2's merge).
    """

    def __init__(self, cfg: CfgNode, model: torch.nn.Module, *, box_vote: float = BOX_VOTE_IOU):
        super().__init__(cfg, model, tta_mapper=flip_views, batch_size=4)
        self.box_vote = float(box_vote)

    def predict(self, inputs: dict) -> Instances:
        """Detect on one tile with its four flips.

        Args:
            inputs: ``{"image": (C, H, W) float tensor on the model's device, "height": H,
                "width": W}``.

        Returns:
            ``Instances`` in tile coordinates: ``pred_boxes`` ``(K, 4)``, ``scores``,
            ``pred_classes`` and ``pred_masks`` ``(K, 1, M, M)`` averaged probabilities
            (not pasted).
        """
        views, tfms = self._get_augmented_inputs(inputs)
        shape = (int(inputs["height"]), int(inputs["width"]))
        with self._turn_off_roi_heads(["mask_on", "keypoint_on"]):
            outputs = self._batch_inference(views)
        # as Detectron2's _get_augmented_boxes, keeping each view's outputs apart for the vote
        boxes = torch.cat([torch.as_tensor(t.inverse().apply_box(o.pred_boxes.tensor.cpu().numpy()))
                           for o, t in zip(outputs, tfms)]).to(self.model.device)
        scores = torch.cat([o.scores for o in outputs])
        classes = torch.cat([o.pred_classes for o in outputs])
        merged = self._merge_detections(boxes, scores, classes, shape)
        if self.box_vote > 0 and len(merged):
            view_of = torch.cat([torch.full((len(o),), k, device=boxes.device)
                                 for k, o in enumerate(outputs)])
            voted, consensus = vote_over_views(merged.pred_boxes.tensor, boxes, scores,
                                               view_of, len(views), self.box_vote)
            merged.pred_boxes, merged.scores = Boxes(voted), consensus.to(merged.scores.dtype)
            merged = merged[consensus >= self.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST]
        if not self.cfg.MODEL.MASK_ON:
            return merged
        if len(merged) == 0:
            merged.pred_masks = torch.zeros(0, 1, 1, 1, device=boxes.device)
            return merged
        outputs = self._batch_inference(views, self._rescale_detected_boxes(views, merged, tfms))
        merged.pred_masks = self._reduce_pred_masks(outputs, tfms)
        return merged

    def _reduce_pred_masks(self, outputs: list[Instances], tfms: list[TransformList]
                           ) -> torch.Tensor:
        """Flip every view's ``(K, 1, M, M)`` masks back to the tile and average them."""
        masks = []
        for output, tfm in zip(outputs, tfms):
            dims = [3 if isinstance(t, HFlipTransform) else 2 for t in tfm.transforms
                    if isinstance(t, (HFlipTransform, VFlipTransform))]
            masks.append(output.pred_masks.flip(dims=dims) if dims else output.pred_masks)
        return torch.stack(masks).mean(0)
