"""Cell-community matching metrics (as cellpose / stardist report them).

Per image, predicted and ground-truth instances are paired one-to-one by Hungarian
matching on their IoU matrix (``pycocotools.mask.iou`` over RLEs, or over boxes when a
method has no masks); only pairs with IoU >= the threshold may be matched. The
matching maximises the number of matched pairs and, among those, the summed IoU.
Counts are then pooled over the data set:

- TP = matched pairs, FP = predictions - TP, FN = ground truth - TP;
- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2TP / (2TP + FP + FN);
- ``accuracy`` = TP / (TP + FP + FN): what cellpose and stardist call "AP";
- ``mean_matched_iou`` = mean IoU of the matched pairs;
- ``panoptic_quality`` = sum of matched IoUs / (TP + FP/2 + FN/2);
- and any metric added with :func:`~.metric_registry.register_cell_metric`.

Crowd ground truth (``iscrowd`` 1) is left out. Predictions below ``score_threshold``
are left out (label-image results all have score 1).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_util
from scipy.optimize import linear_sum_assignment

from .metric_registry import MatchCounts, compute_cell_metrics

DEFAULT_CELL_IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_SCORE_THRESHOLD = 0.5


def match_instances(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of predictions to ground truth at one IoU threshold.

    Pairs that are each other's only candidate (the usual case for cells at IoU >=
    0.5) are matched directly; the remaining rows and columns go to
    ``scipy.optimize.linear_sum_assignment`` with a cost that ranks the number of
    matches first and the summed IoU second.

    Args:
        iou: ``(P, G)`` IoU of predictions (rows) with ground truth (columns).
        threshold: the smallest IoU a matched pair may have.

    Returns:
        (pred_indices, gt_indices), each ``(TP,)`` int64.
    """
    iou = np.asarray(iou, dtype=np.float64)
    if iou.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    candidate = iou >= threshold
    rows, cols = np.nonzero(candidate)
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    row_deg = np.bincount(rows, minlength=iou.shape[0])
    col_deg = np.bincount(cols, minlength=iou.shape[1])
    lone = (row_deg[rows] == 1) & (col_deg[cols] == 1)
    pred_idx, gt_idx = [rows[lone]], [cols[lone]]
    if not lone.all():
        sub_rows = np.unique(rows[~lone])
        sub_cols = np.unique(cols[~lone])
        sub_iou = iou[np.ix_(sub_rows, sub_cols)]
        sub_ok = candidate[np.ix_(sub_rows, sub_cols)]
        # One more match (1) always outweighs any IoU gain (< 0.5 in total).
        scale = 1.0 / (2.0 * min(sub_iou.shape))
        cost = -(sub_ok * (1.0 + scale * sub_iou))
        r, c = linear_sum_assignment(cost)
        ok = sub_ok[r, c]
        pred_idx.append(sub_rows[r[ok]])
        gt_idx.append(sub_cols[c[ok]])
    return np.concatenate(pred_idx).astype(np.int64), np.concatenate(gt_idx).astype(np.int64)


def instance_iou(preds: Sequence[Mapping], gts: Sequence[Mapping], use_masks: bool) -> np.ndarray:
    """``(P, G)`` IoU matrix of prediction and ground-truth annotations of one image."""
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)))
    if use_masks:
        d = [p["segmentation"] for p in preds]  # compressed RLE, str counts
        g = [a["segmentation"] for a in gts]
    else:
        d = [list(p["bbox"]) for p in preds]
        g = [list(a["bbox"]) for a in gts]
    return np.asarray(mask_util.iou(d, g, [0] * len(g)), dtype=np.float64).reshape(len(d), len(g))


def summarize_counts(tp: int, n_pred: int, n_gt: int, iou_sum: float) -> dict[str, float | int]:
    """The counts and every registered metric (:mod:`.metric_registry`) from pooled counts."""
    return compute_cell_metrics(MatchCounts(tp=int(tp), fp=int(n_pred - tp), fn=int(n_gt - tp),
                                            iou_sum=float(iou_sum)))


def threshold_key(t: float) -> str:
    """JSON key of an IoU threshold: ``0.5 -> "0.5"``, ``0.75 -> "0.75"``."""
    return f"{float(t):g}"


def cell_matching_metrics(
    gt: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    iou_thresholds: Sequence[float] = DEFAULT_CELL_IOU_THRESHOLDS,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    use_masks: bool | None = None,
) -> dict[str, dict[str, float | int]]:
    """Matched-instance counts and rates per IoU threshold, pooled over all images.

    Args:
        gt: normalised ground-truth COCO dict (see :func:`~.inputs.load_ground_truth`).
        results: checked results (see :func:`~.inputs.load_results`).
        iou_thresholds: thresholds at which to match.
        score_threshold: predictions with a lower score are ignored.
        use_masks: match masks (default when every result has a segmentation) or boxes.

    Returns:
        ``{"0.5": {"tp", "fp", "fn", "n_pred", "n_gt", "precision", "recall", "f1",
        "accuracy", "mean_matched_iou", "panoptic_quality", <registered metrics>}, ...}``.
    """
    if use_masks is None:
        use_masks = bool(results) and all("segmentation" in r for r in results)
    gts_by_image: dict[Any, list] = defaultdict(list)
    for ann in gt["annotations"]:
        if not ann.get("iscrowd", 0) and (not use_masks or "segmentation" in ann):
            gts_by_image[ann["image_id"]].append(ann)
    preds_by_image: dict[Any, list] = defaultdict(list)
    for det in results:
        if det["score"] >= score_threshold:
            preds_by_image[det["image_id"]].append(det)
    thresholds = [float(t) for t in iou_thresholds]
    tp = np.zeros(len(thresholds), np.int64)
    iou_sum = np.zeros(len(thresholds))
    n_pred = sum(len(v) for v in preds_by_image.values())
    n_gt = sum(len(v) for v in gts_by_image.values())
    for image_id, preds in preds_by_image.items():
        gts = gts_by_image.get(image_id, [])
        if not gts:
            continue
        iou = instance_iou(preds, gts, use_masks)
        for k, t in enumerate(thresholds):
            p_idx, g_idx = match_instances(iou, t)
            tp[k] += p_idx.size
            iou_sum[k] += float(iou[p_idx, g_idx].sum())
    return {threshold_key(t): summarize_counts(int(tp[k]), n_pred, n_gt, float(iou_sum[k]))
            for k, t in enumerate(thresholds)}
