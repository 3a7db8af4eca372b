"""``report.md`` of a demo run: tables of the numbers and links to every figure."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..utils.io import atomic_write_bytes

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _fmt(value: Any) -> str:
    if isinstance(value, (int, float)) and value == value and value >= 0:
        return f"{100 * value:.1f}"
    return "-"


def ap_table(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown rows of box/mask AP (in %) per method from ``metrics.json``."""
    head = "| method | " + " | ".join(f"box {k}" for k in AP_KEYS[:3]) + " | " + \
        " | ".join(f"mask {k}" for k in AP_KEYS[:3]) + " |"
    lines = [head, "|---" * 7 + "|"]
    for name, m in metrics.items():
        box, segm = m.get("bbox", {}), m.get("segm", {})
        cells = [_fmt(box.get(k)) for k in AP_KEYS[:3]] + [_fmt(segm.get(k)) for k in AP_KEYS[:3]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def cell_table(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown rows of the matching metrics (TP/FP/FN and every table metric of the
    metric registry) per method and IoU."""
    from ..evaluation.report import cell_metric_table

    return cell_metric_table({name: m.get("cell") for name, m in metrics.items()}, digits=3)


def control_lines(metrics: Mapping[str, Mapping[str, Any]], method: str) -> list[str]:
    """What pretraining gained: ``method``'s AP minus each control's (same schedule, seed).

    Without controls in ``metrics``, a line saying how to get them.
    """
    controls = [c for c in ("random", "init") if c in metrics]
    if not controls:
        return ["Controls: run `dama-det demo --controls` to train the same detector from "
                "random init and from the untrained export (`init`) and see what pretraining "
                "gained here.", ""]
    lines = ["## Gain over the controls (AP points, one seed)", "",
             "`random`: detectron2's own initialisation; `init`: the pretraining model's "
             "untrained export (same architecture and loader: the null control). Same "
             "schedule and seed as the pretrained detector; differences of about one AP point "
             "are within seed noise (BENCHMARKS.md, transfer study).", "",
             "| control | box AP gain | mask AP gain |", "|---|---|---|"]
    for c in controls:
        cells = []
        for iou in ("bbox", "segm"):
            a, b = metrics[method].get(iou, {}).get("AP"), metrics[c].get(iou, {}).get("AP")
            ok = all(isinstance(v, (int, float)) and v >= 0 for v in (a, b))
            cells.append(f"{100 * (a - b):+.1f}" if ok else "-")
        lines.append(f"| {method} - {c} | " + " | ".join(cells) + " |")
    return lines + [""]


def _pretrain_losses(log_file: Path) -> list[str]:
    if not log_file.is_file():
        return []
    rows = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "epoch" in r and "loss" in r]  # not the epoch-0 probe line
    if not rows:
        return []
    keys = [k for k in ("loss", "recon1", "recon2", "regression") if k in rows[-1]]
    lines = ["| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in (rows[0], rows[len(rows) // 2], rows[-1]) if len(rows) > 2 else rows:
        lines.append(f"| {r['epoch']} | " + " | ".join(
            f"{r.get(k, float('nan')):.4f}" for k in keys) + " |")
    return lines


def _images(paths: Sequence[Path], root: Path, limit: int = 12) -> list[str]:
    return [f"![{p.stem}]({_rel(p, root)})" for p in sorted(paths)[:limit]]


def write_demo_report(
    out: Path, *, method: str, settings: Mapping[str, Any], stages: Sequence[Any]
) -> Path:
    """Write ``out/report.md`` from a finished demo folder.

    Args:
        out: the demo folder (data/, pretrain/, detector/, predictions/, eval/).
        method: the pretraining method's name.
        settings: the sizes used (printed as a table).
        stages: ``StageResult`` of every stage run before the report.

    Returns:
        The report path.
    """
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    lines = ["# dama_det demo report", "",
             f"Synthetic 7-channel tissue -> {method} pretraining -> Mask R-CNN with the "
             "pretrained ViT -> evaluation on the validation tiles. `classical` is the "
             "training-free floor (Otsu threshold + distance-transform watershed on the "
             "first channel, `dama-det classical`).", "",
             "## Box and mask AP (%, validation tiles)", "", *ap_table(metrics), "",
             *control_lines(metrics, method),
             "## Cell matching metrics (Hungarian matching on mask IoU)", "",
             *cell_table(metrics), ""]
    figs = sorted((out / "eval" / "figures").glob("*.png"))
    if figs:
        lines += ["## Precision-recall curves and COCO error breakdown", "",
                  *_images(figs, out, limit=40), ""]
    overlays = sorted((out / "predictions").glob("*_overlay.png"))
    if overlays:
        lines += ["## Sample predictions (validation tiles)", "", *_images(overlays, out, 4), ""]
    pre_figs = sorted((out / "pretrain" / "figures").glob("*.png"))
    losses = _pretrain_losses(out / "pretrain" / "log.jsonl")
    if pre_figs or losses:
        lines += ["## Pretraining", ""]
        if losses:
            lines += ["Losses (first, middle, last epoch):", "", *losses, ""]
        if pre_figs:
            lines += ["Inputs, mask 1, mask 2 and both students' reconstructions (last epoch):",
                      "", *_images(pre_figs[-1:], out), ""]
    if (out / "data" / "preview.png").is_file():
        lines += ["## Data", "", "![synthetic data preview](data/preview.png)", ""]
    lines += ["## Settings", "", "| setting | value |", "|---|---|",
              *[f"| {k} | {v} |" for k, v in settings.items()], "",
              "## Stages", "", "| stage | time (s) |", "|---|---|",
              *[f"| {s.name} | {'skipped' if s.skipped else f'{s.seconds:.0f}'} |"
                for s in stages], "",
              "Detailed numbers: `eval/metrics.json`, `eval/summary.md`; detector logs: "
              "`detector/metrics.json` (TensorBoard: `tensorboard --logdir .`).", ""]
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode("utf-8"))
    return path
