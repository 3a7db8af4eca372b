"""COCO box / mask AP and AR, exactly as pycocotools computes them, in one pass.

One ``COCOeval`` run per IoU type evaluates at the union of pycocotools' standard IoU
thresholds (0.50:0.05:0.95, the very ``np.linspace`` values) and the extra thresholds
wanted for precision-recall curves and the error breakdown (0.1, 0.2, ...). Matching at
each threshold is independent of the others, so the standard AP - the mean over the
ten standard thresholds of the accumulated precision - is bit-for-bit what
pycocotools' ``summarize`` reports, while the same precision array also gives the PR
curves at IoU 0.1 ... 0.9.

``maxDets``: pycocotools' ``summarize`` hard-codes 100 for AP and names the recall
entries AR1/AR10/AR100 whatever ``params.maxDets`` holds (with ``maxDets`` other than
``[1, 10, 100]`` its AP reads -1 and its names lie). Here AP/AP50/AP75/APs/APm/APl and
ARs/ARm/ARl use the largest maxDets ``K`` and there is one ``AR<d>`` per entry ``d``,
so ``maxDets=(1, 10, 100)`` reproduces pycocotools' twelve stats by name and value.
Undefined values (no ground truth in an area range; pycocotools' -1) are None.

Engines: ``"faster"`` (faster-coco-eval's C++ evaluate/accumulate; same numbers to
1e-15, tested) or ``"pycocotools"``.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

#: pycocotools' IoU thresholds, computed exactly as ``COCOeval.Params`` does.
STANDARD_IOU_THRESHOLDS = np.linspace(
    0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True
)
#: IoU thresholds of the PR-curve figures (the paper's).
DEFAULT_PR_IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9)
#: maxDets suited to hundreds of cells per image; AP uses the largest.
DEFAULT_MAX_DETS = (1, 10, 100, 1000)
ALL_AREA = (0.0, 1e5**2)
#: Named area-range sets (pixels^2). "coco" is pycocotools' default; "cells" suits
#: nuclei in 256-pixel tiles (DSB2018 median area ~350 px): small < 16^2, medium
#: 16^2..32^2, large > 32^2.
AREA_RANGE_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "coco": {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)},
    "cells": {"small": (0.0, 16.0**2), "medium": (16.0**2, 32.0**2), "large": (32.0**2, 1e5**2)},
}
_AREA_SHORT = {"small": "s", "medium": "m", "large": "l"}
ENGINES = ("faster", "pycocotools")


def resolve_area_ranges(
    area_ranges: str | Mapping[str, Sequence[float]] | None,
) -> dict[str, tuple[float, float]]:
    """Named area ranges (excluding "all") from a preset name or a mapping.

    Args:
        area_ranges: "coco", "cells", None (= "coco") or ``{name: (lo, hi)}``.

    Returns:
        ``{name: (lo, hi)}`` in pixels^2.
    """
    if area_ranges is None:
        area_ranges = "coco"
    if isinstance(area_ranges, str):
        if area_ranges not in AREA_RANGE_PRESETS:
            raise ValueError(
                f"unknown area-range preset {area_ranges!r} (choose {sorted(AREA_RANGE_PRESETS)})"
            )
        return dict(AREA_RANGE_PRESETS[area_ranges])
    out = {}
    for name, rng in area_ranges.items():
        lo, hi = (float(v) for v in rng)
        if name == "all" or not 0 <= lo < hi:
            raise ValueError(f"area range {name!r}: need a name other than 'all' and 0 <= lo < hi")
        out[str(name)] = (lo, hi)
    return out


def merged_iou_thresholds(extra: Sequence[float]) -> np.ndarray:
    """Sorted union of the standard thresholds and ``extra``; shared values keep the
    standard (linspace) value exactly.

    Args:
        extra: thresholds in (0, 1).

    Returns:
        ``(T,)`` float64.
    """
    values = list(STANDARD_IOU_THRESHOLDS)
    for t in extra:
        t = float(t)
        if not 0.0 < t < 1.0:
            raise ValueError(f"IoU threshold {t} outside (0, 1)")
        if not np.any(np.isclose(values, t, rtol=0, atol=1e-9)):
            values.append(t)
    return np.array(sorted(values), dtype=np.float64)


def threshold_index(thresholds: np.ndarray, t: float) -> int:
    """Index of ``t`` in ``thresholds`` (to 1e-9)."""
    hits = np.flatnonzero(np.isclose(thresholds, t, rtol=0, atol=1e-9))
    if hits.size == 0:
        raise KeyError(f"IoU threshold {t} was not evaluated ({thresholds.tolist()})")
    return int(hits[0])


def stat_names(max_dets: Sequence[int], area_names: Sequence[str]) -> list[str]:
    """Summary names in report order, e.g. AP, AP50, AP75, APs, APm, APl, AR1, ... ARl."""
    short = [_AREA_SHORT.get(a, f"_{a}") for a in area_names]
    return (
        ["AP", "AP50", "AP75"] + [f"AP{s}" for s in short]
        + [f"AR{d}" for d in max_dets] + [f"AR{s}" for s in short]
    )


@dataclass
class CocoEvalResult:
    """Accumulated COCO evaluation of one method for one IoU type.

    Attributes:
        iou_type: "bbox" or "segm".
        iou_thresholds: ``(T,)`` evaluated thresholds (standard ones included).
        rec_thresholds: ``(R,)`` recall points (101).
        area_names: ``(A,)`` "all" first.
        max_dets: sorted maxDets (``M``).
        precision: ``(T, R, K, A, M)`` pycocotools' accumulated precision (-1 = no GT).
        recall: ``(T, K, A, M)``.
        stats: summary name -> value in [0, 1] or None.
    """

    iou_type: str
    iou_thresholds: np.ndarray
    rec_thresholds: np.ndarray
    area_names: list[str]
    area_ranges: list[tuple[float, float]]
    max_dets: list[int]
    precision: np.ndarray
    recall: np.ndarray
    stats: dict[str, float | None] = field(default_factory=dict)

    def pr_curve(self, iou: float, area: str = "all") -> np.ndarray:
        """Precision ``(R,)`` at IoU ``iou`` and the largest maxDets, averaged over
        categories with ground truth; -1 where no category has ground truth."""
        p = self.precision[threshold_index(self.iou_thresholds, iou), :, :,
                           self.area_names.index(area), -1]  # (R, K)
        valid = p > -1
        count = valid.sum(axis=1)
        total = np.where(valid, p, 0.0).sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), -1.0)

    def ap_at(self, iou: float, area: str = "all") -> float | None:
        """AP at one IoU threshold (pycocotools' mean over recall points and categories)."""
        s = self.precision[threshold_index(self.iou_thresholds, iou), :, :,
                           self.area_names.index(area), -1]
        s = s[s > -1]
        return float(np.mean(s)) if s.size else None

    def curves_array(self) -> np.ndarray:
        """``(T, R, A)`` category-averaged precision at the largest maxDets (-1 = none)."""
        return np.stack(
            [np.stack([self.pr_curve(t, a) for a in self.area_names], axis=-1)
             for t in self.iou_thresholds]
        )


def summarize(result: CocoEvalResult) -> dict[str, float | None]:
    """pycocotools' ``_summarize`` for every stat of :func:`stat_names`.

    Selecting the standard thresholds of the merged array yields the same values, in
    the same order, as pycocotools' full-array mean - hence the identical result.
    """
    std = [threshold_index(result.iou_thresholds, t) for t in STANDARD_IOU_THRESHOLDS]
    m_last = len(result.max_dets) - 1

    def mean_valid(s: np.ndarray) -> float | None:
        s = s[s > -1]
        return float(np.mean(s)) if s.size else None

    def ap(t_idx, area="all"):
        return mean_valid(result.precision[t_idx][:, :, :, result.area_names.index(area), m_last])

    def ar(area="all", m=m_last):
        return mean_valid(result.recall[std][:, :, result.area_names.index(area), m])

    names = stat_names(result.max_dets, result.area_names[1:])
    values: list[float | None] = [
        ap(std),
        ap([threshold_index(result.iou_thresholds, 0.5)]),
        ap([threshold_index(result.iou_thresholds, 0.75)]),
    ]
    values += [ap(std, a) for a in result.area_names[1:]]
    values += [ar("all", m) for m in range(len(result.max_dets))]
    values += [ar(a) for a in result.area_names[1:]]
    return dict(zip(names, values))


class _GroundTruthIndex:
    """Builds each engine's ground-truth COCO object once and reuses it."""

    def __init__(self, gt: Mapping[str, Any]):
        self.gt = gt
        self._cache: dict[str, Any] = {}

    def get(self, engine: str):
        if engine not in self._cache:
            dataset = {**self.gt, "annotations": [dict(a) for a in self.gt["annotations"]]}
            if engine == "faster":
                from faster_coco_eval import COCO

                coco = COCO(dataset)
            else:
                from pycocotools.coco import COCO

                coco = COCO()
                coco.dataset = dataset
                with contextlib.redirect_stdout(io.StringIO()):
                    coco.createIndex()
            self._cache[engine] = coco
        return self._cache[engine]


def run_coco_eval(
    gt: Mapping[str, Any] | _GroundTruthIndex,
    results: Sequence[Mapping[str, Any]],
    iou_type: str,
    *,
    iou_thresholds: Sequence[float] = DEFAULT_PR_IOU_THRESHOLDS,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
    area_ranges: str | Mapping[str, Sequence[float]] | None = "coco",
    engine: str = "faster",
) -> CocoEvalResult:
    """Evaluate one method for one IoU type with a single COCOeval pass.

    Args:
        gt: the normalised ground truth (see :func:`~.inputs.load_ground_truth`), or a
            cached index of it.
        results: checked COCO results (see :func:`~.inputs.load_results`); not modified.
        iou_type: "bbox" or "segm".
        iou_thresholds: extra thresholds evaluated beside the standard ten.
        max_dets: maxDets list; AP uses the largest.
        area_ranges: preset name or ``{name: (lo, hi)}`` (see :func:`resolve_area_ranges`).
        engine: "faster" (faster-coco-eval) or "pycocotools".

    Returns:
        The accumulated arrays and summary stats.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    index = gt if isinstance(gt, _GroundTruthIndex) else _GroundTruthIndex(gt)
    coco_gt = index.get(engine)
    ranges = resolve_area_ranges(area_ranges)
    dets = sorted({int(d) for d in max_dets})
    if not dets or dets[0] < 1:
        raise ValueError(f"max_dets must be positive integers, got {list(max_dets)}")
    thresholds = merged_iou_thresholds(iou_thresholds)
    copies = [dict(r) for r in results]  # loadRes writes into the dicts
    quiet = contextlib.redirect_stdout(io.StringIO())
    if engine == "faster":
        from faster_coco_eval import COCOeval_faster

        coco_dt = coco_gt.loadRes(copies)
        ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None,
                             ranges={k: list(v) for k, v in ranges.items()})
    else:
        from pycocotools.cocoeval import COCOeval

        with quiet:
            coco_dt = coco_gt.loadRes(copies)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
    ev.params.iouThrs = thresholds
    ev.params.maxDets = dets
    ev.params.areaRng = [list(ALL_AREA)] + [list(v) for v in ranges.values()]
    ev.params.areaRngLbl = ["all", *ranges]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    result = CocoEvalResult(
        iou_type=iou_type,
        iou_thresholds=np.asarray(ev.params.iouThrs, dtype=np.float64),
        rec_thresholds=np.asarray(ev.params.recThrs, dtype=np.float64),
        area_names=["all", *ranges],
        area_ranges=[ALL_AREA, *ranges.values()],
        max_dets=dets,
        precision=np.asarray(ev.eval["precision"], dtype=np.float64),
        recall=np.asarray(ev.eval["recall"], dtype=np.float64),
    )
    result.stats = summarize(result)
    return result
