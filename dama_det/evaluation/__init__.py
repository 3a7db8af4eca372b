"""Evaluation of cell instance segmentation: COCO box/mask AP and AR (identical to
pycocotools), PR curves per IoU threshold, the COCO error breakdown, cellpose/stardist
matching metrics, figures and reports; usable from Python, the CLI
(``dama-det eval`` / ``dama-det plot``) and detectron2 trainers
(:class:`CellCOCOEvaluator`).

Every name below is imported on first access, so that :mod:`.options` (the ``eval``
command's options) loads without numpy or torch; detectron2 (and torch) are imported
only when the evaluator is asked for."""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CellCOCOEvaluator": "detectron2_evaluator",
    "CocoEvalResult": "coco_metrics",
    "EvaluationReport": "report",
    "cell_matching_metrics": "cell_metrics",
    "error_breakdown": "error_breakdown",
    "evaluate": "report",
    "evaluate_report": "report",
    "label_folder_to_results": "inputs",
    "load_curves": "report",
    "load_ground_truth": "inputs",
    "load_results": "inputs",
    "match_instances": "cell_metrics",
    "run_coco_eval": "coco_metrics",
    "write_report": "report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
