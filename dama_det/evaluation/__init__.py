"""Evaluation of cell instance segmentation: COCO box/mask AP and AR (identical to
pycocotools), PR curves per IoU threshold, the COCO error breakdown, cellpose/stardist
matching metrics, figures and reports; usable from Python, the CLI
(``dama-det eval`` / ``dama-det plot``) and detectron2 trainers
(:class:`CellCOCOEvaluator`)."""
from __future__ import annotations

from .cell_metrics import cell_matching_metrics, match_instances
from .coco_metrics import CocoEvalResult, run_coco_eval
from .error_breakdown import error_breakdown
from .inputs import label_folder_to_results, load_ground_truth, load_results
from .report import EvaluationReport, evaluate, evaluate_report, load_curves, write_report

__all__ = [
    "CellCOCOEvaluator",
    "CocoEvalResult",
    "EvaluationReport",
    "cell_matching_metrics",
    "error_breakdown",
    "evaluate",
    "evaluate_report",
    "label_folder_to_results",
    "load_curves",
    "load_ground_truth",
    "load_results",
    "match_instances",
    "run_coco_eval",
    "write_report",
]


def __getattr__(name: str):
    # detectron2 (and torch) are imported only when the evaluator is asked for.
    if name == "CellCOCOEvaluator":
        from .detectron2_evaluator import CellCOCOEvaluator

        return CellCOCOEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
