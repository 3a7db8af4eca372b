"""The tables of ``dama-det compare``: AP per method (mean ± std over seeds), the gain
of every method over the controls (random init and the untrained export ``init``),
with several labelled fractions AP against the share of labelled training images, and
with a ``probe`` section the frozen-encoder probe accuracy of every encoder, and the
cell matching metrics of the metric registry per IoU threshold.

Files written in the comparison folder: ``results.md`` / ``.csv`` / ``.json``,
``report.md`` and, with several label fractions, ``ap_vs_labels.png``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..evaluation.metric_registry import table_metrics
from ..utils.io import atomic_write_bytes, atomic_write_json
from .run_spec import RunSpec

TABLE_METRICS = (("bbox", "AP"), ("segm", "AP"), ("bbox", "AP50"), ("bbox", "AP75"),
                 ("segm", "AP50"), ("segm", "AP75"))
METRIC_NAMES = {"bbox/AP": "box AP", "segm/AP": "mask AP", "bbox/AP50": "box AP50",
                "bbox/AP75": "box AP75", "segm/AP50": "mask AP50", "segm/AP75": "mask AP75"}
GAIN_METRICS = (("segm", "AP"), ("bbox", "AP"))

#: per-seed metrics of one label fraction: ``{seed: {method: {"bbox": {...}, "segm": {...}}}}``
SeedMetrics = dict[int, dict]


def fraction_tag(fraction: float) -> str:
    """Path suffix of a label fraction: ``""`` for all labels, else ``"_f0.1"``."""
    return "" if fraction == 1.0 else f"_f{fraction:g}"


def predictions_tag(fraction: float, tta: str = "off") -> str:
    """Path suffix of predictions and their evaluation: the label fraction's, then
    ``"_tta-<mode>"`` with test-time augmentation (so switching it never reuses the
    predictions or metrics of another setting)."""
    return fraction_tag(fraction) + ("" if tta == "off" else f"_tta-{tta}")


def evaluation_name(seed: int, fraction: float, tta: str = "off") -> str:
    """The folder under ``eval/`` of ``seed``'s evaluation on ``fraction`` (with ``tta``)."""
    return f"seed{seed}{predictions_tag(fraction, tta)}"


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean, population std and count of per-seed values (NaN mean and std when empty)."""
    return {"mean": float(np.mean(values)) if values else float("nan"),
            "std": float(np.std(values)) if values else float("nan"), "n": len(values)}


def aggregate(spec: RunSpec, metrics: dict[int, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and std over seeds of every table metric: ``{method: {"bbox/AP": {mean, std, n}}}``."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for m in spec.methods:
        row = {}
        for iou_type, key in TABLE_METRICS:
            values = [metrics[s][m.name].get(iou_type, {}).get(key) for s in spec.seeds]
            row[f"{iou_type}/{key}"] = mean_std([v for v in values if v is not None and v >= 0])
        table[m.name] = row
    return table


def cell_aggregate(spec: RunSpec, metrics: dict[int, dict]) -> dict[str, dict[str, dict]]:
    """Mean and std over seeds of every table metric of the cell-metric registry at every
    matching IoU threshold: ``{method: {"0.5": {"accuracy": {mean, std, n}, ...}, ...}}``
    (empty when the evaluations hold no cell metrics)."""
    out: dict[str, dict[str, dict]] = {}
    for m in spec.methods:
        cells = [metrics[s][m.name].get("cell") or {} for s in spec.seeds]
        thresholds = sorted({t for c in cells for t in c}, key=float)
        out[m.name] = {t: {metric.name: mean_std([c[t][metric.name] for c in cells
                                                   if metric.name in c.get(t, {})])
                           for metric in table_metrics()} for t in thresholds}
    return out if any(out.values()) else {}


def _cell_lines(cell: dict[str, dict[str, dict]]) -> list[str]:
    if not cell:
        return []
    metrics = table_metrics()
    lines = ["", "Cell matching (predictions scored >= 0.5 matched one-to-one at each IoU, "
             "pooled over the validation images; %, mean ± std over seeds):", "",
             "| method | IoU | " + " | ".join(m.title for m in metrics) + " |",
             "|---" * (len(metrics) + 2) + "|"]
    for method, by_t in cell.items():
        for t, row in by_t.items():
            lines.append(f"| {method} | {t} | " + " | ".join(
                f"{100 * row[m.name]['mean']:.1f} ± {100 * row[m.name]['std']:.1f}"
                if row[m.name]["n"] else "-" for m in metrics) + " |")
    return lines


def gains(spec: RunSpec, metrics: dict[int, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Per-seed paired gain of every method over the controls, mean and std over seeds.

    The references are the first method of kind ``random`` and the first of kind
    ``init`` (when the description has them).

    Returns:
        ``{method: {"segm/AP vs random": {mean, std, n}, ...}}`` (AP fractions).
    """
    refs = {kind: next((m.name for m in spec.methods if m.kind == kind), None)
            for kind in ("random", "init")}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in spec.methods:
        row = {}
        for kind, ref in refs.items():
            if ref is None:
                continue
            for iou_type, key in GAIN_METRICS:
                diffs = []
                for s in spec.seeds:
                    a = metrics[s][m.name].get(iou_type, {}).get(key)
                    b = metrics[s][ref].get(iou_type, {}).get(key)
                    if a is not None and b is not None and a >= 0 and b >= 0:
                        diffs.append(a - b)
                row[f"{iou_type}/{key} vs {kind}"] = mean_std(diffs)
        out[m.name] = row
    return out


def _gain_lines(gain: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    cols = list(next(iter(gain.values()), {}))  # every row has the same columns
    if not cols:
        return []
    title = {"segm/AP": "mask AP", "bbox/AP": "box AP"}
    head = [f"{title[c.split(' vs ')[0]]} vs {c.split(' vs ')[1]}" for c in cols]
    lines = ["", "Gain over the controls (AP points; per-seed paired differences, mean ± std):",
             "", "| method | " + " | ".join(head) + " |", "|---" * (len(cols) + 1) + "|"]
    for method, row in gain.items():
        lines.append(f"| {method} | " + " | ".join(
            f"{100 * row[c]['mean']:+.1f} ± {100 * row[c]['std']:.1f}" for c in cols) + " |")
    return lines


def probe_summary(spec: RunSpec, probes: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Probe balanced accuracy per method, mean ± std over seeds, and the paired gain over
    the ``init`` control (when the description has it).

    Args:
        probes: ``{seed: {method: dama-det probe result}}`` (methods with an encoder).

    Returns:
        ``{method: {"linear": {mean, std, n}, "knn": ..., "linear vs init": ...}}``
        (``knn`` for the celltype task only).
    """
    ref = next((m.name for m in spec.methods if m.kind == "init"), None)
    out: dict[str, dict] = {}
    for m in spec.methods:
        seeds = [s for s in spec.seeds if m.name in probes.get(s, {})]
        if not seeds:
            continue
        row = {}
        for probe in ("linear", "knn"):
            values = [probes[s][m.name].get(probe, {}).get("balanced_accuracy") for s in seeds]
            if any(v is None for v in values):
                continue
            row[probe] = mean_std(values)
            if ref is not None and all(ref in probes[s] for s in seeds):
                row[f"{probe} vs init"] = mean_std(
                    [v - probes[s][ref][probe]["balanced_accuracy"] for v, s in zip(values, seeds)])
        out[m.name] = row
    return out


def _probe_lines(spec: RunSpec, summary: dict[str, dict]) -> list[str]:
    if not summary:
        return []
    cols = list(next(iter(summary.values())))
    lines = ["", f"## Frozen-encoder probe ({spec.probe['task']})", "",
             "Balanced accuracy (%) of probes on the frozen encoder's features (mean ± std "
             "over seeds; gains are per-seed paired differences, in points):", "",
             "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for method, row in summary.items():
        cells = [f"{100 * row[c]['mean']:{'+' if 'vs' in c else ''}.1f} ± {100 * row[c]['std']:.1f}"
                 if c in row else "-" for c in cols]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _table_lines(table: dict, cols: list[str]) -> list[str]:
    lines = ["| method | " + " | ".join(METRIC_NAMES[c] for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for method, row in table.items():
        lines.append(f"| {method} | " + " | ".join(
            f"{100 * row[c]['mean']:.1f} ± {100 * row[c]['std']:.1f}" for c in cols) + " |")
    return lines


def _labels_lines(tables: dict[float, dict], spec: RunSpec) -> list[str]:
    fractions = sorted(tables)
    lines = ["", "Mask AP (%) against the labelled share of the training images (mean ± std "
             "over seeds; the subsets are fixed by seed and shared by all methods):", "",
             "| method | " + " | ".join(f"{100 * f:g} % labels" for f in fractions) + " |",
             "|---" * (len(fractions) + 1) + "|"]
    for m in spec.methods:
        cells = [tables[f]["table"][m.name]["segm/AP"] for f in fractions]
        lines.append(f"| {m.name} | " + " | ".join(
            f"{100 * c['mean']:.1f} ± {100 * c['std']:.1f}" for c in cells) + " |")
    return lines


def plot_ap_vs_labels(tables: dict[float, dict], spec: RunSpec, path: Path) -> Path:
    """Mask AP (mean ± std over seeds) against the label fraction, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted(tables)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in spec.methods:
        cells = [tables[f]["table"][m.name]["segm/AP"] for f in fractions]
        ax.errorbar([100 * f for f in fractions], [100 * c["mean"] for c in cells],
                    yerr=[100 * c["std"] for c in cells], marker="o", capsize=3, label=m.name)
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}" for f in fractions])
    ax.set_xlabel("labelled training images (%)")
    ax.set_ylabel("mask AP (%)")
    ax.set_title(f"{spec.name}: {len(spec.seeds)} seed(s)")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_results(out: Path, spec: RunSpec, by_fraction: dict[float, SeedMetrics],
                  probes: dict[int, dict[str, dict]] | None = None) -> Path:
    """Write results.{md,csv,json} and report.md (and ``ap_vs_labels.png`` with several
    label fractions); returns results.md.

    Args:
        out: the comparison folder.
        spec: the run description.
        by_fraction: per label fraction, the per-seed metrics of every method.
        probes: per seed, the probe result of every method with an encoder (or None).
    """
    cols = [f"{t}/{k}" for t, k in TABLE_METRICS]
    tables = {f: {"table": aggregate(spec, m), "gains": gains(spec, m),
                  "cell": cell_aggregate(spec, m), "per_seed": m}
              for f, m in sorted(by_fraction.items())}
    n = len(spec.seeds)
    lines = [f"# {spec.name}: Mask R-CNN AP (%) per pretraining method",
             "", f"mean ± std over {n} seed(s) {spec.seeds}; same seed for every method."]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "label_fraction"] + [
        f"{METRIC_NAMES[c]} {s}" for c in cols for s in ("mean", "std")])
    for f, res in sorted(tables.items(), reverse=True):
        if len(tables) > 1:
            lines += ["", f"## {100 * f:g} % of the training images labelled"]
        lines += [""] + _table_lines(res["table"], cols) + _gain_lines(res["gains"])
        lines += _cell_lines(res["cell"])
        for method, row in res["table"].items():
            writer.writerow([method, f"{f:g}"] + [
                f"{100 * row[c][s]:.3f}" for c in cols for s in ("mean", "std")])
    figures = []
    if len(tables) > 1:
        lines += ["", "## Labels"] + _labels_lines(tables, spec)
        figures.append(plot_ap_vs_labels(tables, spec, out / "ap_vs_labels.png"))
    probe = probe_summary(spec, probes) if probes is not None else None
    if probe is not None:
        lines += _probe_lines(spec, probe)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    summary = {"name": spec.name, "seeds": spec.seeds,
               "label_fractions": sorted(tables), **tables[max(tables)],
               "by_label_fraction": {f"{f:g}": res for f, res in tables.items()}}
    if probe is not None:
        summary["probe"] = {"task": spec.probe["task"], "table": probe,
                            "per_seed": {str(s): {m: {k: r[k] for k in ("linear", "knn") if k in r}
                                                  for m, r in per.items()}
                                         for s, per in probes.items()}}
    atomic_write_json(out / "results.json", summary)
    first = out / "eval" / evaluation_name(spec.seeds[0], max(tables), spec.tta)
    figs = (sorted((first / "figures").glob("compare_*.png"))
            or sorted((first / "figures").glob("*.png")))
    report = lines + ["", f"## Figures (seed {spec.seeds[0]}, all methods overlaid)", ""] + [
        f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures + figs] + [
        "", "Per-seed numbers: `eval/seed<k>[_f<fraction>]/metrics.json` and `summary.md`.", ""]
    atomic_write_bytes(out / "report.md", "\n".join(report).encode())
    return atomic_write_bytes(out / "results.md", ("\n".join(lines) + "\n").encode())
