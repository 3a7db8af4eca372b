"""A detectron2 evaluator that runs the dama_det report on a model's predictions.

``CellCOCOEvaluator`` collects predictions exactly as detectron2's ``COCOEvaluator``
does (it subclasses it: ground truth from the dataset's ``json_file`` metadata or
converted from the registered dicts; ``instances_to_coco_json`` per image; gathering
across processes), then evaluates them with :func:`~.report.evaluate_report`: COCO
AP/AR with maxDets suited to hundreds of cells, PR curves, error breakdown, cell
matching metrics, and - with ``output_dir`` - the report files and figures.

Returned values follow detectron2's convention (percent, NaN when undefined) so that
``print_csv_format`` and best-checkpoint hooks work: ``{"bbox": {"AP": 61.2, ...},
"segm": {...}, "cell": {"F1@0.5": 88.1, "accuracy@0.5": ..., ...}}``.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Sequence

from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm

from ..utils.io import atomic_write_json
from .cell_metrics import DEFAULT_CELL_IOU_THRESHOLDS, DEFAULT_SCORE_THRESHOLD
from .coco_metrics import DEFAULT_MAX_DETS, DEFAULT_PR_IOU_THRESHOLDS
from .metric_registry import table_metrics
from .report import evaluate_report, write_report

logger = logging.getLogger(__name__)


def _percent(value: float | None) -> float:
    return float("nan") if value is None else 100.0 * float(value)


def flatten_for_detectron2(metrics: dict[str, Any]) -> OrderedDict:
    """One method's ``metrics.json`` entry as detectron2-style flat percent dicts."""
    out: OrderedDict = OrderedDict()
    for task in ("bbox", "segm"):
        if task in metrics:
            out[task] = OrderedDict((k, _percent(v)) for k, v in metrics[task].items())
    cell = OrderedDict()
    for t, entry in metrics.get("cell", {}).items():
        for metric in table_metrics():
            cell[f"{metric.name}@{t}"] = _percent(entry.get(metric.name))
    if cell:
        out["cell"] = cell
    return out


class CellCOCOEvaluator(COCOEvaluator):
    """detectron2 ``DatasetEvaluator`` producing the dama_det evaluation report.

    Args:
        dataset_name: a registered dataset (with ``json_file`` metadata, or convertible).
        output_dir: if given, the predictions (``coco_instances_results.json``) and the
            report (metrics.json, report.json, pr_curves.npz, summary.md, figures/) go
            here.
        max_dets: COCO maxDets; AP uses the largest (default (1, 10, 100, 1000)).
        iou_thresholds: IoU thresholds of the PR curves.
        area_ranges: "coco", "cells" or ``{name: (lo, hi)}``.
        cell_iou_thresholds: IoU thresholds of the matching metrics.
        score_threshold: matching metrics ignore predictions scored lower.
        figures: draw figures into ``output_dir/figures``.
        distributed: gather predictions from every process (as COCOEvaluator).
        method_name: the name of the model in the report.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        *,
        max_dets: Sequence[int] = DEFAULT_MAX_DETS,
        iou_thresholds: Sequence[float] = DEFAULT_PR_IOU_THRESHOLDS,
        area_ranges: Any = "coco",
        cell_iou_thresholds: Sequence[float] = DEFAULT_CELL_IOU_THRESHOLDS,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        figures: bool = True,
        distributed: bool = True,
        method_name: str = "model",
    ):
        super().__init__(dataset_name, tasks=None, distributed=distributed,
                         output_dir=output_dir, max_dets_per_image=max(max_dets))
        self._dama_settings = dict(
            max_dets=tuple(max_dets), iou_thresholds=tuple(iou_thresholds),
            area_ranges=area_ranges, cell_iou_thresholds=tuple(cell_iou_thresholds),
            score_threshold=score_threshold)
        self._figures = figures
        self._method_name = method_name
        self.report = None

    def evaluate(self, img_ids=None) -> OrderedDict:
        """Gather predictions, run the report; returns detectron2-style percent dicts.

        Args:
            img_ids: restrict the evaluation to these image ids (default: all).
        """
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return OrderedDict()
        else:
            predictions = self._predictions
        results = [ann for p in predictions for ann in p.get("instances", [])]
        if not results:
            logger.warning("[CellCOCOEvaluator] no predictions received; nothing to evaluate")
            return OrderedDict()
        mapping = getattr(self._metadata, "thing_dataset_id_to_contiguous_id", None)
        if mapping:
            reverse = {v: k for k, v in mapping.items()}
            for ann in results:
                ann["category_id"] = reverse[ann["category_id"]]
        gt = dict(self._coco_api.dataset)
        if img_ids is not None:
            keep = set(img_ids)
            gt["images"] = [im for im in gt["images"] if im["id"] in keep]
            gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
            results = [r for r in results if r["image_id"] in keep]
        if self._output_dir:
            atomic_write_json(os.path.join(self._output_dir, "coco_instances_results.json"),
                              results, indent=None)
        self.report = evaluate_report(gt, {self._method_name: results}, progress=False,
                                      **self._dama_settings)
        if self._output_dir:
            write_report(self.report, self._output_dir, figures=self._figures)
        metrics = self.report.metrics()[self._method_name]
        logger.info("Cell evaluation of %s:\n%s", self._dataset_name(),
                    json.dumps({k: v for k, v in metrics.items() if k != "cell"}, indent=1))
        self._results = flatten_for_detectron2(metrics)
        return OrderedDict((k, OrderedDict(v)) for k, v in self._results.items())

    def _dataset_name(self) -> str:
        return getattr(self._metadata, "name", "dataset")
