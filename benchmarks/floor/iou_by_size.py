"""Where is matching at IoU 0.9 lost? Label-image predictions against ground truth, by size.

    python benchmarks/floor/iou_by_size.py GT_DIR detector=PRED_DIR classical=CLS_DIR

GT_DIR holds ``<name>_masks.tif`` ground-truth label images; each PRED_DIR the
``<name>_masks.tif`` label images that ``dama-det predict`` (use ``--score-thresh 0.5``) or
``dama-det classical`` wrote for the same names. Prints, per method, TP/(TP+FP+FN) pooled
over the images at IoU 0.5 / 0.7 / 0.8 / 0.9 (one-to-one matching, as ``dama-det eval``),
and per ground-truth area range the share of nuclei matched at IoU >= 0.5, 0.8 and 0.9, and,
over the nuclei matched at IoU >= 0.5, the median predicted / true area and the median
distance between the predicted and the true centroid (px).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from dama_det.evaluation.cell_metrics import match_instances

THRESHOLDS = (0.5, 0.7, 0.8, 0.9)
AREA_BINS = (0, 100, 300, 1000, np.inf)  # ground-truth area, px


def label_iou(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU ``(P, G)`` of the instances of two label images, and their areas ``(P,)``, ``(G,)``."""
    _, g = np.unique(gt.ravel(), return_inverse=True)
    _, p = np.unique(pred.ravel(), return_inverse=True)
    if gt.min() > 0:  # no background in the image: keep every id as an instance
        g = g + 1
    if pred.min() > 0:
        p = p + 1
    ng, npr = int(g.max()) + 1, int(p.max()) + 1
    cont = np.bincount(p * ng + g, minlength=npr * ng).reshape(npr, ng)
    inter = cont[1:, 1:]
    area_p, area_g = cont.sum(1)[1:], cont.sum(0)[1:]
    union = area_p[:, None] + area_g[None, :] - inter
    return inter / np.maximum(union, 1), area_p, area_g


def centroids(labels: np.ndarray) -> np.ndarray:
    """Centroids ``(K, 2)`` (row, col) of the instances of a label image, in id order."""
    ids = np.unique(labels)
    ids = ids[ids > 0] if labels.min() == 0 else ids
    return np.array(ndi.center_of_mass(np.ones_like(labels), labels, ids)).reshape(-1, 2)


def evaluate(gt_dir: Path, pred_dir: Path) -> dict:
    """Pooled counts per IoU threshold and per-nucleus records of one method."""
    tp = dict.fromkeys(THRESHOLDS, 0)
    n_pred = n_gt = 0
    best_iou, gt_area, ratio, offset = [], [], [], []
    gt_paths = sorted(gt_dir.glob("*_masks.tif"))
    if not gt_paths:
        raise SystemExit(f"{gt_dir}: no <name>_masks.tif ground-truth label images")
    for gt_path in gt_paths:
        pred_path = pred_dir / gt_path.name
        if not pred_path.exists():
            raise SystemExit(f"{pred_path}: missing (every ground-truth image needs one)")
        gt, pred = tifffile.imread(gt_path), tifffile.imread(pred_path)
        iou, area_p, area_g = label_iou(gt, pred)
        n_pred, n_gt = n_pred + len(area_p), n_gt + len(area_g)
        matches = {t: match_instances(iou, t) for t in THRESHOLDS}
        for t, (pi, _) in matches.items():
            tp[t] += len(pi)
        pi, gi = matches[0.5]  # the records: every nucleus matched at IoU >= 0.5
        matched = np.zeros(len(area_g))
        matched[gi] = iou[pi, gi]
        best_iou.append(matched)
        gt_area.append(area_g)
        r = np.full(len(area_g), np.nan)
        r[gi] = area_p[pi] / area_g[gi]
        ratio.append(r)
        d = np.full(len(area_g), np.nan)
        if len(gi):
            d[gi] = np.linalg.norm(centroids(pred)[pi] - centroids(gt)[gi], axis=1)
        offset.append(d)
    return {"tp": tp, "n_pred": n_pred, "n_gt": n_gt, "iou": np.concatenate(best_iou),
            "area": np.concatenate(gt_area), "ratio": np.concatenate(ratio),
            "offset": np.concatenate(offset)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gt", type=Path, help="folder of <name>_masks.tif ground truth")
    parser.add_argument("methods", nargs="+", metavar="NAME=DIR",
                        help="label-image predictions of a method")
    args = parser.parse_args(argv)
    print("| method | " + " | ".join(f"TP/(TP+FP+FN) @{t}" for t in THRESHOLDS) + " |")
    print("|---" * (len(THRESHOLDS) + 1) + "|")
    per_size = []
    for item in args.methods:
        name, sep, folder = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: expected NAME=DIR")
        r = evaluate(args.gt, Path(folder))
        scores = [r["tp"][t] / (r["n_pred"] + r["n_gt"] - r["tp"][t]) for t in THRESHOLDS]
        print(f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
        per_size.append((name, r))
    print("\n| method | true area (px) | nuclei | matched at IoU >= 0.5 | >= 0.8 | >= 0.9 "
          "| median area ratio | median centroid offset (px) |")
    print("|---" * 8 + "|")
    for name, r in per_size:
        for lo, hi in zip(AREA_BINS[:-1], AREA_BINS[1:]):
            m = (r["area"] >= lo) & (r["area"] < hi)
            ratio, offset = (np.nanmedian(r[k][m]) if np.isfinite(r[k][m]).any() else np.nan
                             for k in ("ratio", "offset"))
            label = f"{lo}-{hi:g}" if np.isfinite(hi) else f">= {lo}"
            shares = " | ".join(f"{np.mean(r['iou'][m] >= t):.3f}" for t in (0.5, 0.8, 0.9))
            print(f"| {name} | {label} | {m.sum()} | {shares} | {ratio:.3f} | {offset:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
