"""The run's outputs: ``results.json``, the paper's table and the confusion figures.

``table.md`` / ``table.csv`` hold one row per method (fold accuracies, mean and
error); ``confusion_<method>.png`` is the test confusion matrix summed over folds.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import atomic_write_bytes, atomic_write_json
from .dataset import CropIndex
from .methods import PreparedMethod
from .options import ClassifyOptions
from .table import BASELINE, MethodRow, build_table, save_confusion_figure, to_csv, to_markdown


def summarise(opts: ClassifyOptions, index: CropIndex, methods: list[PreparedMethod],
              store: dict, img_size: int, folds_file: Path) -> dict[str, Any]:
    """Everything of the run: per-method fold records, sums, and the table."""
    k = opts.folds
    rows, per_method = [], []
    for m in methods:
        folds = store["methods"][m.spec.name]["folds"]
        records = [folds[str(i)] for i in range(k)]
        epochs = m.export.get("epoch") if m.export is not None else None
        row = MethodRow(name=m.spec.name, fold_acc=[r["test_acc"] for r in records],
                        seconds=sum(r["seconds"] for r in records),
                        pretrain_epochs=int(epochs) if epochs is not None else None)
        rows.append(row)
        confusion = np.sum([np.asarray(r["confusion"]) for r in records], axis=0)
        per_method.append({
            "name": m.spec.name,
            "row_label": row.label(),
            "export": str(m.spec.export_path) if m.spec.export_path else None,
            "pretrain_method": m.export.get("method") if m.export is not None else None,
            "pretrain_epochs": row.pretrain_epochs,
            "arch": asdict(m.arch),
            "load_report": m.report.to_dict() if m.report else None,
            "fold_acc": row.fold_acc,
            "fold_train_acc": [r["train_acc"] for r in records],
            "avg": row.avg,
            "err": 100.0 - round(row.avg, 2),
            "seconds": row.seconds,
            "confusion": confusion.tolist(),
            "folds": records,
        })
    base = next((r.avg for r in rows if r.name == BASELINE), None)
    for entry, row in zip(per_method, rows):
        entry["delta_to_random"] = (round(row.avg, 2) - round(base, 2)
                                    if base is not None else None)
    header, body = build_table(rows, k)
    return {
        "format": "dama_det.classify_summary.v1",
        "data": str(index.root),
        "class_names": index.class_names,
        "class_counts": index.class_counts(),
        "channel_names": index.channel_names,
        "in_chans": index.in_chans,
        "num_samples": len(index.paths),
        "img_size": img_size,
        "k": k,
        "seed": opts.seed,
        "label_fraction": opts.label_fraction,
        "folds_file": str(folds_file),
        "finetune": opts.finetune.fingerprint(),
        "random_pos_embed": opts.random_pos_embed,
        "pool": opts.pool,
        "intensity_scaling": opts.intensity_scaling,
        "methods": per_method,
        "table": {"header": header, "rows": body, "markdown": to_markdown(header, body),
                  "csv": to_csv(header, body)},
    }


def write_outputs(out: Path, results: dict[str, Any], class_names: list[str]) -> None:
    """Write ``table.md``, ``table.csv``, one confusion figure per method and ``results.json``."""
    table = results["table"]
    atomic_write_bytes(out / "table.md", table["markdown"].encode("utf-8"))
    atomic_write_bytes(out / "table.csv", table["csv"].encode("utf-8"))
    for m in results["methods"]:
        save_confusion_figure(out / f"confusion_{m['name']}.png", np.asarray(m["confusion"]),
                              class_names, f"{m['row_label']}, {results['k']} folds")
    atomic_write_json(out / "results.json", results)
