"""The cell matching metrics as one table that every consumer loops over.

A metric turns the counts pooled over a data set at one IoU threshold (matched pairs,
false positives, false negatives, summed IoU of the matched pairs) into one number.
:func:`~.cell_metrics.cell_matching_metrics` computes every registered metric into
``metrics.json``; the evaluation report (``summary.md``), the demo report, the
detectron2 evaluator (``"<name>@<iou>"`` in the trainer's results) and the
``compare_cell`` figure read the same table, so a new metric is one
:func:`register_cell_metric` call (in any module imported before the evaluation)::

    from dama_det.evaluation.metric_registry import CellMetric, register_cell_metric, ratio

    register_cell_metric(CellMetric(
        "fp_per_gt", "FP per GT", lambda c: ratio(c.fp, c.n_gt),
        help="false positives per ground-truth instance"))

This module imports nothing heavy (no torch, no pycocotools).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: keys of every cell entry that hold counts, not registered metrics
COUNT_KEYS = ("tp", "fp", "fn", "n_pred", "n_gt")


@dataclass(frozen=True)
class MatchCounts:
    """Counts of one-to-one matching pooled over a data set at one IoU threshold.

    Attributes:
        tp: matched pairs. fp: unmatched predictions. fn: unmatched ground truth.
        iou_sum: summed IoU of the matched pairs.
    """

    tp: int
    fp: int
    fn: int
    iou_sum: float

    @property
    def n_pred(self) -> int:
        """Predictions counted (score above the threshold)."""
        return self.tp + self.fp

    @property
    def n_gt(self) -> int:
        """Ground-truth instances counted (not crowd)."""
        return self.tp + self.fn


@dataclass(frozen=True)
class CellMetric:
    """One cell matching metric.

    Attributes:
        name: its key in ``metrics.json``'s cell entries (and ``"<name>@<iou>"`` in the
            detectron2 evaluator's results).
        title: column header / figure panel title.
        compute: counts -> value (a rate in [0, 1] for the figure's axis).
        help: one line on what it measures.
        in_tables: a column of the report tables and a detectron2 result.
        in_figure: a panel of the ``compare_cell`` figure.
    """

    name: str
    title: str
    compute: Callable[[MatchCounts], float]
    help: str = ""
    in_tables: bool = True
    in_figure: bool = True


_METRICS: dict[str, CellMetric] = {}


def ratio(a: float, b: float) -> float:
    """``a / b`` as a float; 0 when ``b`` is 0 (nothing to count)."""
    return float(a / b) if b > 0 else 0.0


def register_cell_metric(metric: CellMetric) -> CellMetric:
    """Add ``metric`` to the table (after the ones already there).

    Raises:
        ValueError: the name is taken, or is one of the count keys.
    """
    if metric.name in _METRICS or metric.name in COUNT_KEYS:
        raise ValueError(f"cell metric {metric.name!r} already exists")
    if not metric.name.isidentifier():
        raise ValueError(f"cell metric name {metric.name!r} must be an identifier")
    _METRICS[metric.name] = metric
    return metric


def unregister_cell_metric(name: str) -> None:
    """Remove a metric (tests, plug-ins that replace a metric)."""
    _METRICS.pop(name, None)


def cell_metrics() -> tuple[CellMetric, ...]:
    """Every registered metric, in registration order."""
    return tuple(_METRICS.values())


def table_metrics() -> tuple[CellMetric, ...]:
    """The metrics shown as report columns and detectron2 results."""
    return tuple(m for m in _METRICS.values() if m.in_tables)


def figure_metrics() -> tuple[CellMetric, ...]:
    """The metrics drawn as panels of the ``compare_cell`` figure."""
    return tuple(m for m in _METRICS.values() if m.in_figure)


def compute_cell_metrics(counts: MatchCounts) -> dict[str, float | int]:
    """One cell entry of ``metrics.json``: the counts, then every registered metric."""
    entry: dict[str, float | int] = {
        "tp": int(counts.tp), "fp": int(counts.fp), "fn": int(counts.fn),
        "n_pred": int(counts.n_pred), "n_gt": int(counts.n_gt)}
    for m in _METRICS.values():
        entry[m.name] = float(m.compute(counts))
    return entry


for _metric in (
    CellMetric("precision", "precision", lambda c: ratio(c.tp, c.tp + c.fp),
               help="TP / (TP + FP)"),
    CellMetric("recall", "recall", lambda c: ratio(c.tp, c.tp + c.fn), help="TP / (TP + FN)"),
    CellMetric("f1", "F1", lambda c: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
               help="2TP / (2TP + FP + FN)"),
    CellMetric("accuracy", "TP/(TP+FP+FN)", lambda c: ratio(c.tp, c.tp + c.fp + c.fn),
               help="TP / (TP + FP + FN): what cellpose and stardist call AP"),
    CellMetric("mean_matched_iou", "mean matched IoU", lambda c: ratio(c.iou_sum, c.tp),
               help="mean IoU of the matched pairs", in_tables=False, in_figure=False),
    CellMetric("panoptic_quality", "PQ",
               lambda c: ratio(c.iou_sum, c.tp + c.fp / 2 + c.fn / 2),
               help="summed matched IoU / (TP + FP/2 + FN/2)", in_figure=False),
):
    register_cell_metric(_metric)
