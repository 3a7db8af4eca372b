"""The evaluation report: COCO AP/AR, PR curves, error breakdown and cell matching
metrics for one or more methods against one ground truth, and its files.

``out_dir`` receives:

- ``metrics.json``: ``{method: {"bbox": {AP, AP50, ...}, "segm": {...}, "cell":
  {"0.5": {tp, fp, fn, precision, recall, f1, accuracy, ...}, ...}}}``; values in
  [0, 1] (None where undefined, e.g. no ground truth in an area range); a method
  without boxes (masks) has no "bbox" ("segm") key.
- ``report.json``: every number: settings, the stats, AP per IoU threshold and area,
  error-breakdown areas, the PR curves drawn, cell metrics.
- ``pr_curves.npz``: the precision arrays, so ``dama-det plot`` can redraw / overlay.
- ``summary.md``: a Markdown table per method and a comparison table.
- ``figures/``: PNG + PDF figures (see :func:`~.plots.draw_all_figures`).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from ..errors import DamaUserError, print_warning
from ..utils.io import atomic_write_bytes, atomic_write_json
from .cell_metrics import (
    DEFAULT_CELL_IOU_THRESHOLDS,
    DEFAULT_SCORE_THRESHOLD,
    cell_matching_metrics,
    threshold_key,
)
from .coco_metrics import (
    DEFAULT_MAX_DETS,
    DEFAULT_PR_IOU_THRESHOLDS,
    CocoEvalResult,
    _GroundTruthIndex,
    merged_iou_thresholds,
    resolve_area_ranges,
    run_coco_eval,
)
from .error_breakdown import LOC_IOU, SIM_OTH_NOTE, breakdown_areas, error_breakdown
from .inputs import GroundTruthSource, ResultsSource, load_ground_truth, load_results
from .metric_registry import table_metrics
from .plots import MethodCurves, draw_all_figures

CURVES_FILE = "pr_curves.npz"


@dataclass
class MethodReport:
    """Evaluation of one method: COCO results per IoU type and cell metrics."""

    name: str
    coco: dict[str, CocoEvalResult] = field(default_factory=dict)
    cell: dict[str, dict] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """This method's entry of ``metrics.json``."""
        out: dict[str, Any] = {t: dict(r.stats) for t, r in self.coco.items()}
        out["cell"] = self.cell
        return out

    def curves(self) -> MethodCurves:
        first = next(iter(self.coco.values()))
        return MethodCurves(
            name=self.name,
            precision={t: r.curves_array() for t, r in self.coco.items()},
            iou_thresholds=first.iou_thresholds, rec_thresholds=first.rec_thresholds,
            area_names=list(first.area_names), cell=self.cell,
        )


@dataclass
class EvaluationReport:
    """All methods' evaluations plus the settings used."""

    methods: dict[str, MethodReport]
    settings: dict[str, Any]

    def metrics(self) -> dict[str, dict[str, Any]]:
        """The ``metrics.json`` content."""
        return {name: m.metrics() for name, m in self.methods.items()}

    def details(self) -> dict[str, Any]:
        """The ``report.json`` content: every number."""
        pr_ious = self.settings["pr_iou_thresholds"]
        methods = {}
        for name, m in self.methods.items():
            entry: dict[str, Any] = {}
            for iou_type, r in m.coco.items():
                entry[iou_type] = {
                    "stats": r.stats,
                    "ap_per_iou": {a: {threshold_key(t): r.ap_at(t, a) for t in r.iou_thresholds}
                                   for a in r.area_names},
                    "error_breakdown": {a: breakdown_areas(error_breakdown(r, a))
                                        for a in r.area_names},
                    "pr_curves": {a: {threshold_key(t): np.round(r.pr_curve(t, a), 6).tolist()
                                      for t in pr_ious} for a in r.area_names},
                }
            entry["cell"] = m.cell
            methods[name] = entry
        return {"settings": self.settings, "methods": methods}


def evaluate_report(
    gt: GroundTruthSource,
    results: Mapping[str, ResultsSource],
    *,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
    iou_thresholds: Sequence[float] = DEFAULT_PR_IOU_THRESHOLDS,
    area_ranges: str | Mapping[str, Sequence[float]] | None = "coco",
    cell_iou_thresholds: Sequence[float] = DEFAULT_CELL_IOU_THRESHOLDS,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    engine: str = "faster",
    progress: bool = True,
) -> EvaluationReport:
    """Evaluate every method (no files written). Arguments as :func:`evaluate`."""
    if not results:
        raise DamaUserError("no results given: pass at least one NAME=RESULTS")
    try:
        ranges = resolve_area_ranges(area_ranges)
        pr_ious = sorted({float(t) for t in iou_thresholds})
        extra = sorted({*pr_ious, LOC_IOU, 0.5, 0.75})
        merged_iou_thresholds(extra)  # rejects thresholds outside (0, 1)
        if not max_dets or min(int(d) for d in max_dets) < 1:
            raise ValueError(f"max_dets must be positive integers, got {list(max_dets)}")
        cell_ts = sorted({float(t) for t in cell_iou_thresholds})
        if not cell_ts or not all(0 < t <= 1 for t in cell_ts):
            raise ValueError(f"cell IoU thresholds must lie in (0, 1], got {cell_ts}")
    except ValueError as exc:
        raise DamaUserError(str(exc)) from None
    gt_data = load_ground_truth(gt)
    index = _GroundTruthIndex(gt_data)
    # Check every input before the (long) evaluation starts.
    loaded = {name: load_results(source, gt_data, name) for name, source in results.items()}
    capped = max_dets_capping(gt_data, loaded, max(int(d) for d in max_dets))
    if capped:
        print_warning(capped)
    methods: dict[str, MethodReport] = {}
    for name, dets in tqdm(loaded.items(), desc="evaluate", unit="method",
                           disable=not progress or len(loaded) < 2):
        report = MethodReport(name)
        iou_types = [t for t, key in (("bbox", "bbox"), ("segm", "segmentation")) if key in dets[0]]
        if "segm" in iou_types and not any("segmentation" in a for a in gt_data["annotations"]):
            raise DamaUserError(f"{name}: results have masks but the ground truth has none")
        for iou_type in iou_types:
            try:
                report.coco[iou_type] = run_coco_eval(
                    index, dets, iou_type, iou_thresholds=extra, max_dets=max_dets,
                    area_ranges=ranges, engine=engine)
            except ValueError as exc:
                raise DamaUserError(f"{name} ({iou_type}): {exc}") from None
        report.cell = cell_matching_metrics(gt_data, dets, cell_ts, score_threshold,
                                            use_masks="segm" in iou_types)
        methods[name] = report
    settings = {
        "max_dets": sorted({int(d) for d in max_dets}),
        "pr_iou_thresholds": pr_ious,
        "evaluated_iou_thresholds": next(iter(next(iter(methods.values())).coco.values()))
        .iou_thresholds.tolist(),
        "area_ranges": {"all": [0.0, 1e10], **{k: list(v) for k, v in ranges.items()}},
        "cell_iou_thresholds": cell_ts,
        "cell_score_threshold": float(score_threshold),
        "cell_matched_on": {n: ("segm" if "segm" in m.coco else "bbox")
                            for n, m in methods.items()},
        "engine": engine,
        "error_breakdown_note": SIM_OTH_NOTE,
        "n_images": len(gt_data["images"]),
        "n_gt_instances": len(gt_data["annotations"]),
    }
    return EvaluationReport(methods, settings)


def max_dets_capping(gt: Mapping[str, Any], results: Mapping[str, Sequence[Mapping]],
                     max_dets: int) -> str | None:
    """Why COCO AP at ``max_dets`` would understate these results, or None.

    COCO's AP counts at most ``max_dets`` detections per image (the best scored): an
    image with more ground-truth instances cannot be fully recalled, and detections past
    the cap are dropped, so AP is capped without any other sign.

    Args:
        gt: the COCO ground truth.
        results: method name -> its COCO results.
        max_dets: the largest maxDets (the one AP uses).

    Returns:
        One line naming the image with the most instances or detections over the cap,
        its counts and the ``--max-dets`` that would lift the cap; None when no image
        exceeds it.
    """
    counts: dict[str, Counter] = {"ground-truth instances": Counter(
        a["image_id"] for a in gt["annotations"] if not a.get("iscrowd"))}
    counts.update({f"{name} detections": Counter(d["image_id"] for d in dets)
                   for name, dets in results.items()})
    over = {(what, image): n for what, c in counts.items() for image, n in c.items()
            if n > max_dets}
    if not over:
        return None
    (what, image), n = max(over.items(), key=lambda kv: kv[1])
    names = {img["id"]: img.get("file_name", "") for img in gt["images"]}
    n_images = len({image for _, image in over})
    more = f" (and {n_images - 1} more image(s) over the cap)" if n_images > 1 else ""
    return (f"image {image} ({names.get(image, '?')}) has {n} {what}, more than --max-dets "
            f"{max_dets}{more}: COCO AP counts at most {max_dets} detections per image, so AP "
            f"is capped; rerun with --max-dets {max(over.values())} or more")


def save_curves(report: EvaluationReport, path: str | Path) -> Path:
    """Write the precision arrays of every method to an ``.npz`` (see :func:`load_curves`)."""
    curves = [m.curves() for m in report.methods.values()]
    arrays: dict[str, np.ndarray] = {
        "methods": np.array([c.name for c in curves]),
        "iou_thresholds": curves[0].iou_thresholds,
        "rec_thresholds": curves[0].rec_thresholds,
        "area_names": np.array(curves[0].area_names),
        "pr_iou_thresholds": np.array(report.settings["pr_iou_thresholds"]),
        "cell_json": np.array(json.dumps({c.name: c.cell for c in curves})),
    }
    for i, c in enumerate(curves):
        for iou_type, p in c.precision.items():
            arrays[f"precision_{i}_{iou_type}"] = p.astype(np.float64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_curves(path: str | Path) -> tuple[list[MethodCurves], list[float]]:
    """Read an ``.npz`` written by :func:`save_curves`.

    Returns:
        (the methods' curves, the PR-figure IoU thresholds).

    Raises:
        DamaUserError: missing or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise DamaUserError(f"{path}: no such file (expected the {CURVES_FILE} of an evaluation)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["methods"]]
            cell = json.loads(str(z["cell_json"]))
            methods = []
            for i, name in enumerate(names):
                precision = {t: z[f"precision_{i}_{t}"] for t in ("bbox", "segm")
                             if f"precision_{i}_{t}" in z.files}
                methods.append(MethodCurves(
                    name=name, precision=precision, iou_thresholds=z["iou_thresholds"],
                    rec_thresholds=z["rec_thresholds"],
                    area_names=[str(a) for a in z["area_names"]], cell=cell.get(name, {})))
            pr_ious = [float(t) for t in z["pr_iou_thresholds"]]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DamaUserError(f"{path}: not a dama-det PR-curve file, or a truncated one "
                            f"({type(exc).__name__}: {exc})") from None
    return methods, pr_ious


def _cell(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def cell_metric_table(cells: Mapping[str, Mapping[str, Mapping[str, Any]]], digits: int = 4,
                      method_column: bool = True) -> list[str]:
    """Markdown table of cell matching metrics: a row per method and IoU threshold, columns
    TP, FP, FN and every table metric of :mod:`.metric_registry`.

    Args:
        cells: method -> its ``metrics.json`` cell entry (``{iou: {tp, ..., metric: value}}``).
        digits: decimals of the metric values.
        method_column: start each row with the method's name.
    """
    metrics = table_metrics()
    head = ["method"] * method_column + ["IoU", "TP", "FP", "FN"] + [m.title for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, cell in cells.items():
        for t, c in (cell or {}).items():
            values = [name] * method_column + [t, str(c["tp"]), str(c["fp"]), str(c["fn"])]
            values += ["n/a" if c.get(m.name) is None else f"{c[m.name]:.{digits}f}"
                       for m in metrics]
            lines.append("| " + " | ".join(values) + " |")
    return lines


def markdown_summary(report: EvaluationReport) -> str:
    """Markdown: a comparison table, then per method COCO stats and cell metrics tables."""
    lines = ["# Evaluation summary", ""]
    names = list(report.methods)
    cell_t = threshold_key(report.settings["cell_iou_thresholds"][0])
    lines += [f"| method | box AP | box AP50 | mask AP | mask AP50 | mask AP75 | F1@{cell_t} "
              f"| TP/(TP+FP+FN)@{cell_t} |", "|---" * 8 + "|"]
    for n in names:
        m = report.methods[n].metrics()
        b, s, c = m.get("bbox", {}), m.get("segm", {}), m["cell"].get(cell_t, {})
        lines.append(f"| {n} | {_cell(b.get('AP'))} | {_cell(b.get('AP50'))} | "
                     f"{_cell(s.get('AP'))} | {_cell(s.get('AP50'))} | {_cell(s.get('AP75'))} | "
                     f"{_cell(c.get('f1'))} | {_cell(c.get('accuracy'))} |")
    for n in names:
        m = report.methods[n]
        types = list(m.coco)
        lines += ["", f"## {n}", "", "| metric | " + " | ".join(types) + " |",
                  "|---" * (len(types) + 1) + "|"]
        stat_names = list(next(iter(m.coco.values())).stats)
        for s in stat_names:
            lines.append(f"| {s} | " + " | ".join(_cell(m.coco[t].stats[s]) for t in types) + " |")
        lines += ["", *cell_metric_table({n: m.cell}, method_column=False)]
    st = report.settings
    lines += ["", f"maxDets {st['max_dets']} (AP uses {st['max_dets'][-1]}); cell metrics: "
              f"predictions with score >= {st['cell_score_threshold']}, Hungarian matching "
              f"on {'/'.join(sorted(set(st['cell_matched_on'].values())))} IoU; engine "
              f"{st['engine']}.", ""]
    return "\n".join(lines)


def write_report(report: EvaluationReport, out_dir: str | os.PathLike, figures: bool = True,
                 formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write metrics.json, report.json, pr_curves.npz, summary.md and figures/.

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    written = [
        atomic_write_json(out / "report.json", report.details()),
        save_curves(report, out / CURVES_FILE),
        atomic_write_bytes(out / "summary.md", markdown_summary(report).encode("utf-8")),
    ]
    if figures:
        written += draw_all_figures([m.curves() for m in report.methods.values()],
                                    out / "figures", report.settings["pr_iou_thresholds"],
                                    formats)
    # metrics.json last: its presence means the evaluation finished.
    written.append(atomic_write_json(out / "metrics.json", report.metrics()))
    return written


def evaluate(
    gt: GroundTruthSource,
    results: Mapping[str, ResultsSource],
    out_dir: str | os.PathLike | None = None,
    *,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
    iou_thresholds: Sequence[float] = DEFAULT_PR_IOU_THRESHOLDS,
    area_ranges: str | Mapping[str, Sequence[float]] | None = "coco",
    cell_iou_thresholds: Sequence[float] = DEFAULT_CELL_IOU_THRESHOLDS,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    engine: str = "faster",
    figures: bool = True,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Evaluate methods against a ground truth and (optionally) write the report.

    Args:
        gt: COCO json path, folder of image / ``_masks`` pairs, or COCO dict.
        results: method name -> results json path, label-image folder, or results list.
        out_dir: where to write the report files; None = compute only.
        max_dets: COCO maxDets (AP/AR use the largest).
        iou_thresholds: IoU thresholds of the PR curves (evaluated together with the
            standard 0.5:0.95, which alone define AP).
        area_ranges: "coco", "cells" or ``{name: (lo, hi)}`` in pixels^2.
        cell_iou_thresholds: IoU thresholds of the matching metrics.
        score_threshold: the matching metrics ignore predictions scored lower.
        engine: "faster" (faster-coco-eval) or "pycocotools"; same numbers.
        figures: draw figures (PNG + PDF) when writing.
        progress: show a progress bar.

    Returns:
        ``{method: {"bbox": {...}, "segm": {...}, "cell": {...}}}`` (= metrics.json).

    Raises:
        DamaUserError: bad inputs (message names the file / entry).
    """
    report = evaluate_report(
        gt, results, max_dets=max_dets, iou_thresholds=iou_thresholds, area_ranges=area_ranges,
        cell_iou_thresholds=cell_iou_thresholds, score_threshold=score_threshold,
        engine=engine, progress=progress)
    if out_dir is not None:
        write_report(report, out_dir, figures=figures)
    return report.metrics()
