"""Detection evaluators by name: the values ``TEST.EVALUATOR`` may take.

``DamaTrainer.build_evaluator`` looks the configured name up here, and building the
training config (``engine.setup.build_cfg``) rejects an unknown name before training
starts (not after it, when the first evaluation would run). A new evaluator is one
decorated function in any module imported before training::

    from dama_det.engine.evaluators import register_evaluator

    @register_evaluator("my_eval", "what it reports")
    def build_my_evaluator(cfg, dataset_name, output_folder, max_dets):
        return MyEvaluator(dataset_name, output_folder)

Built in: ``cell`` (default; :class:`~dama_det.evaluation.CellCOCOEvaluator`: the COCO
numbers through faster-coco-eval plus the cell matching metrics, cell-sized area ranges)
and ``coco`` (detectron2's ``COCOEvaluator``, pycocotools).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from detectron2.config import CfgNode

from ..errors import DamaUserError

#: ``(cfg, dataset_name, output_folder, max_dets) -> detectron2 DatasetEvaluator``
EvaluatorBuilder = Callable[[CfgNode, str, str, int], Any]


@dataclass(frozen=True)
class EvaluatorEntry:
    """A registered evaluator: its ``TEST.EVALUATOR`` name, one line of help, the builder."""

    name: str
    help: str
    build: EvaluatorBuilder


_EVALUATORS: dict[str, EvaluatorEntry] = {}


def register_evaluator(name: str, help: str = "") -> Callable[[EvaluatorBuilder], EvaluatorBuilder]:
    """Decorator registering ``fn(cfg, dataset_name, output_folder, max_dets)`` as the
    evaluator ``TEST.EVALUATOR: name``.

    Raises:
        ValueError: the name is taken.
    """
    def add(fn: EvaluatorBuilder) -> EvaluatorBuilder:
        if name in _EVALUATORS:
            raise ValueError(f"evaluator {name!r} is already registered")
        _EVALUATORS[name] = EvaluatorEntry(name, help, fn)
        return fn

    return add


def unregister_evaluator(name: str) -> None:
    """Remove an evaluator (tests, plug-ins that replace one)."""
    _EVALUATORS.pop(name, None)


def evaluator_names() -> list[str]:
    """The registered names, in registration order."""
    return list(_EVALUATORS)


def check_evaluator_name(name: str) -> None:
    """Raise a one-line :class:`DamaUserError` when ``TEST.EVALUATOR`` names no evaluator."""
    if name not in _EVALUATORS:
        choices = ", ".join(repr(n) for n in _EVALUATORS)
        raise DamaUserError(f"TEST.EVALUATOR must be one of {choices}, got {name!r}")


def build_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str, max_dets: int):
    """The evaluator ``cfg.TEST.EVALUATOR`` (default ``cell``) for one registered dataset.

    Args:
        cfg: the training config.
        dataset_name: a registered detectron2 dataset.
        output_folder: where the evaluator writes its files.
        max_dets: detections per image that AP counts (>= ``TEST.DETECTIONS_PER_IMAGE``).
    """
    name = cfg.TEST.get("EVALUATOR", "cell")
    check_evaluator_name(name)
    return _EVALUATORS[name].build(cfg, dataset_name, output_folder, max_dets)


@register_evaluator("cell", "COCO AP/AR (faster-coco-eval), cell matching metrics, cell-sized "
                    "area ranges")
def build_cell_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str, max_dets: int):
    from ..evaluation.detectron2_evaluator import CellCOCOEvaluator

    return CellCOCOEvaluator(
        dataset_name, output_folder,
        max_dets=(1, 10, 100, max_dets) if max_dets > 100 else (1, 10, max_dets),
        area_ranges="cells", figures=False, distributed=True)


@register_evaluator("coco", "detectron2's COCOEvaluator (pycocotools)")
def build_coco_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str, max_dets: int):
    from detectron2.evaluation import COCOEvaluator

    return COCOEvaluator(
        dataset_name, tasks=("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",),
        distributed=True, output_dir=output_folder, max_dets_per_image=max_dets,
        use_fast_impl=False)
