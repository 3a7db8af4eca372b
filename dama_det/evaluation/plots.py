"""Figures of an evaluation: PR curves per IoU threshold, COCO error breakdown, method
comparisons and cell matching metrics (matplotlib, Agg backend, PNG + PDF).

Everything is drawn from plain arrays (:class:`MethodCurves`), so ``dama-det plot`` can
redraw and overlay runs from their saved ``pr_curves.npz`` and ``metrics.json``.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils.io import atomic_write_bytes
from .error_breakdown import BREAKDOWN_LABELS, breakdown_from_curves, curve_area
from .metric_registry import figure_metrics

#: Stacked-area colours, darkest (strictest) at the bottom.
BREAKDOWN_COLORS = {
    "C75": "#1b3a6b", "C50": "#2f6fb3", "Loc": "#63a9d9", "Sim": "#9ccfa0",
    "Oth": "#e8d36b", "BG": "#f0a04b", "FN": "#d9534f",
}
IOU_TYPE_TITLES = {"bbox": "box", "segm": "mask"}
FIGURE_DPI = 130


@dataclass
class MethodCurves:
    """What the figures of one method need.

    Attributes:
        name: method name.
        precision: iou_type -> ``(T, R, A)`` precision at the largest maxDets (-1 = none).
        iou_thresholds: ``(T,)``. rec_thresholds: ``(R,)``. area_names: ``(A,)``.
        cell: the "cell" metrics dict (threshold key -> counts/rates), may be empty.
    """

    name: str
    precision: dict[str, np.ndarray]
    iou_thresholds: np.ndarray
    rec_thresholds: np.ndarray
    area_names: list[str]
    cell: dict = field(default_factory=dict)

    def curve(self, iou_type: str, iou: float, area: str = "all") -> np.ndarray:
        """``(R,)`` precision at one IoU threshold and area range."""
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, iou, rtol=0, atol=1e-9))
        if hits.size == 0:
            raise KeyError(f"{self.name}: IoU {iou} not evaluated")
        return self.precision[iou_type][hits[0], :, self.area_names.index(area)]

    def breakdown(self, iou_type: str, area: str = "all") -> dict[str, np.ndarray]:
        return breakdown_from_curves(self.curve(iou_type, 0.75, area),
                                     self.curve(iou_type, 0.5, area),
                                     self.curve(iou_type, 0.1, area))


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_name(name: str) -> str:
    """A file-name-safe version of a method name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "method"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _setup_pr_axes(ax, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.label_outer()  # inner panels of a shared-axes grid keep no axis labels


def draw_pr_curves(ax, rec: np.ndarray, curves: Sequence[tuple[str, np.ndarray]], title: str,
                   sequential: bool = True, legend_outside: bool = False) -> None:
    """Line plot of PR curves; each label is prefixed with its area, "[0.812] @0.5".

    Args:
        ax: matplotlib axes. rec: ``(R,)`` recall points.
        curves: (label, ``(R,)`` precision, -1 = undefined) pairs.
        title: axes title.
        sequential: colour by order (IoU thresholds) rather than by category (methods).
        legend_outside: put the legend right of the axes instead of inside.
    """
    plt = _plt()
    for i, (label, curve) in enumerate(curves):
        if sequential:
            color = plt.get_cmap("viridis")(0.9 * i / max(len(curves) - 1, 1))
        else:
            color = plt.get_cmap("tab10")(i % 10)
        if np.all(curve <= -1):
            ax.plot([], [], color=color, label=f"[n/a] {label}")
            continue
        ax.plot(rec, np.where(curve > -1, curve, np.nan), color=color, lw=1.6,
                label=f"[{_fmt(curve_area(curve))}] {label}")
    _setup_pr_axes(ax, title)
    if legend_outside:
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    else:
        ax.legend(loc="lower left", fontsize=7, framealpha=0.85)


def draw_breakdown(ax, rec: np.ndarray, curves: dict[str, np.ndarray], title: str) -> None:
    """Stacked-area COCO error breakdown; legend "[area] label", FN drawn first (top).

    Args:
        ax: axes. rec: ``(R,)``. curves: label -> ``(R,)`` (see :mod:`.error_breakdown`).
        title: axes title.
    """
    _setup_pr_axes(ax, title)
    if np.all(curves["FN"] <= -1):
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
        return
    handles = {}
    for label in reversed(BREAKDOWN_LABELS):
        y = np.clip(curves[label], 0.0, None)
        handles[label] = ax.fill_between(rec, 0, y, color=BREAKDOWN_COLORS[label], lw=0.6,
                                         edgecolor="black",
                                         label=f"[{_fmt(curve_area(curves[label]))}] {label}")
    ax.legend([handles[k] for k in BREAKDOWN_LABELS],
              [handles[k].get_label() for k in BREAKDOWN_LABELS],
              loc="lower left", fontsize=7, framealpha=0.85)


def save_figure(fig, stem: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``stem.<fmt>`` for each format atomically and close the figure."""
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=FIGURE_DPI)
        paths.append(atomic_write_bytes(stem.with_suffix(f".{fmt}"), buf.getvalue()))
    _plt().close(fig)
    return paths


def _grid(n: int, max_cols: int = 4, size: float = 3.6, width_factor: float = 1.0):
    plt = _plt()
    cols = min(n, max_cols)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols * width_factor, size * rows),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for ax in axes.ravel():
        ax.label_outer()
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def figure_method_pr(m: MethodCurves, iou_type: str, pr_ious: Sequence[float]):
    """One method's PR curves at every requested IoU threshold (area "all")."""
    fig, axes = _grid(1, size=4.6, width_factor=1.35)
    curves = [(f"@{t:g}", m.curve(iou_type, t)) for t in pr_ious]
    draw_pr_curves(axes[0], m.rec_thresholds, curves,
                   f"{m.name}: {IOU_TYPE_TITLES[iou_type]} PR curves", legend_outside=True)
    return fig


def figure_method_breakdown(m: MethodCurves, iou_type: str):
    """One method's error breakdown: overall and per area range."""
    fig, axes = _grid(len(m.area_names))
    for ax, area in zip(axes, m.area_names):
        draw_breakdown(ax, m.rec_thresholds, m.breakdown(iou_type, area),
                       f"{m.name}: {IOU_TYPE_TITLES[iou_type]}, {area}")
    return fig


def figure_compare_pr(methods: Sequence[MethodCurves], iou_type: str, pr_ious: Sequence[float]):
    """One panel per IoU threshold, every method overlaid ("[AP] method")."""
    fig, axes = _grid(len(pr_ious))
    for ax, t in zip(axes, pr_ious):
        draw_pr_curves(ax, methods[0].rec_thresholds,
                       [(m.name, m.curve(iou_type, t)) for m in methods],
                       f"{IOU_TYPE_TITLES[iou_type]} PR @IoU {t:g}", sequential=False)
    return fig


def figure_compare_breakdown(methods: Sequence[MethodCurves], iou_type: str, area: str = "all"):
    """One error-breakdown panel per method, side by side."""
    fig, axes = _grid(len(methods))
    for ax, m in zip(axes, methods):
        draw_breakdown(ax, m.rec_thresholds, m.breakdown(iou_type, area),
                       f"{m.name}: {IOU_TYPE_TITLES[iou_type]}, {area}")
    return fig


def figure_compare_cell(methods: Sequence[MethodCurves]):
    """Cell matching metrics (the registry's figure metrics) against the IoU threshold,
    one line per method."""
    panels = figure_metrics()
    fig, axes = _grid(len(panels))
    for ax, metric in zip(axes, panels):
        key, title = metric.name, metric.title
        for m in methods:
            ts = sorted((t for t in m.cell if key in m.cell[t]), key=float)
            if not ts:  # no cell metrics, or an older report without this metric
                continue
            ax.plot([float(t) for t in ts], [m.cell[t][key] for t in ts], marker="o",
                    label=m.name)
        ax.set_xlabel("IoU threshold")
        ax.set_ylim(0, 1.01)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return fig


def draw_all_figures(
    methods: Sequence[MethodCurves],
    fig_dir: str | Path,
    pr_ious: Sequence[float],
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Every figure of a report: per method and comparisons across methods.

    Files (``<iou>`` = bbox / segm): ``<method>_<iou>_pr``, ``<method>_<iou>_breakdown``,
    ``compare_<iou>_pr`` and ``compare_<iou>_breakdown`` (two methods or more),
    ``compare_cell``.

    Args:
        methods: the methods' curves. fig_dir: output folder.
        pr_ious: IoU thresholds of the PR figures. formats: file formats.

    Returns:
        The written paths.
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for iou_type in ("bbox", "segm"):
        having = [m for m in methods if iou_type in m.precision]
        for m in having:
            stem = fig_dir / f"{safe_name(m.name)}_{iou_type}"
            written += save_figure(figure_method_pr(m, iou_type, pr_ious),
                                   stem.with_name(stem.name + "_pr"), formats)
            written += save_figure(figure_method_breakdown(m, iou_type),
                                   stem.with_name(stem.name + "_breakdown"), formats)
        if len(having) > 1:  # with one method these repeat the per-method figures
            written += save_figure(figure_compare_pr(having, iou_type, pr_ious),
                                   fig_dir / f"compare_{iou_type}_pr", formats)
            written += save_figure(figure_compare_breakdown(having, iou_type),
                                   fig_dir / f"compare_{iou_type}_breakdown", formats)
    if any(m.cell for m in methods):
        written += save_figure(figure_compare_cell(methods), fig_dir / "compare_cell", formats)
    return written
