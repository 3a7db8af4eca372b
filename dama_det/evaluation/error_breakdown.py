"""The COCO error breakdown (Hoiem-style, as the COCO ``analyze`` tool draws it).

Seven precision-recall curves, each with fewer kinds of error than the one before:

- **C75**: PR at IoU 0.75.  **C50**: PR at IoU 0.5.
- **Loc**: PR at IoU 0.1 (localisation errors ignored, duplicates still count).
- **Sim**: supercategory confusions removed.  **Oth**: all class confusions removed.
  With one class ("cell") there are no class confusions, so Sim = Oth = Loc. With
  several classes this module does not separate class confusions either: Sim and Oth
  are reported equal to Loc (documented limitation; the JSON says so).
- **BG**: all remaining (background) false positives removed: precision is 1 at every
  recall level reached at IoU 0.1 and 0 beyond.
- **FN**: every remaining error removed (perfect recall): precision 1 everywhere.

All curves come from the single accumulated precision array of
:func:`~.coco_metrics.run_coco_eval` (thresholds 0.1, 0.5, 0.75 are evaluated in the
same pass), at the largest maxDets. The number in each legend is the area under the
curve: the mean precision over the 101 recall points (the AP of that curve).
"""
from __future__ import annotations

import numpy as np

from .coco_metrics import CocoEvalResult

BREAKDOWN_LABELS = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
LOC_IOU = 0.1
SIM_OTH_NOTE = "single evaluation: Sim and Oth equal Loc (no class confusions with one class)"


def breakdown_from_curves(c75: np.ndarray, c50: np.ndarray,
                          loc: np.ndarray) -> dict[str, np.ndarray]:
    """Build the seven curves from the PR curves at IoU 0.75, 0.5 and 0.1.

    Args:
        c75, c50, loc: ``(R,)`` precision at the recall thresholds; -1 = no ground truth.

    Returns:
        label -> ``(R,)`` curve; every curve is -1 everywhere when ``loc`` is undefined.
    """
    defined = loc > -1
    bg = np.where(defined, (loc > 0).astype(np.float64), -1.0)
    fn = np.where(defined, 1.0, -1.0)
    return {"C75": c75.copy(), "C50": c50.copy(), "Loc": loc.copy(), "Sim": loc.copy(),
            "Oth": loc.copy(), "BG": bg, "FN": fn}


def error_breakdown(result: CocoEvalResult, area: str = "all") -> dict[str, np.ndarray]:
    """The seven breakdown curves of one evaluation for one area range.

    Args:
        result: a :class:`~.coco_metrics.CocoEvalResult` evaluated at IoU 0.1, 0.5, 0.75.
        area: area-range name.

    Returns:
        label -> ``(R,)`` precision curve (see :func:`breakdown_from_curves`).
    """
    return breakdown_from_curves(
        result.pr_curve(0.75, area), result.pr_curve(0.5, area), result.pr_curve(LOC_IOU, area)
    )


def curve_area(curve: np.ndarray) -> float | None:
    """Area under a PR curve sampled at the 101 recall points (mean precision), or None
    if undefined (-1)."""
    valid = curve[curve > -1]
    return float(np.mean(valid)) if valid.size else None


def breakdown_areas(curves: dict[str, np.ndarray]) -> dict[str, float | None]:
    """label -> area under the curve, in :data:`BREAKDOWN_LABELS` order."""
    return {label: curve_area(curves[label]) for label in BREAKDOWN_LABELS}
