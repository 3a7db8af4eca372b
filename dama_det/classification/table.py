"""The paper's k-fold accuracy table (Markdown and CSV) and confusion-matrix figures.

Layout (README of the paper)::

    |                   | 0     | 1     | ... | Avg. ↑       | Err. ↓ |
    | Random init. (2h) | 91.75 | 91.19 | ... | 91.98(+0.00) | 8.02   |
    | DAMA 500 (5h)     | 95.50 | 94.50 | ... | 95.47(+3.49) | 4.53   |

A row is ``name [pretraining epochs] (fine-tuning wall time)``; fold cells are test
accuracies in percent; Avg. is their mean with the difference to the random-init
baseline; Err. = 100 - Avg.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..utils.io import atomic_write_bytes

BASELINE = "random"


@dataclass
class MethodRow:
    """One method's results.

    Attributes:
        name: method name (``random`` is the random-init baseline).
        fold_acc: test accuracy (%) per fold, in fold order.
        seconds: fine-tuning wall time summed over folds.
        pretrain_epochs: pretraining epochs from the export, if known.
    """

    name: str
    fold_acc: list[float]
    seconds: float
    pretrain_epochs: int | None = None

    @property
    def avg(self) -> float:
        """Mean fold accuracy (%)."""
        return float(np.mean(self.fold_acc))

    def label(self) -> str:
        """Row label, e.g. ``"DAMA 500 (5h)"`` or ``"Random init. (12m)"``."""
        name = "Random init." if self.name == BASELINE else self.name
        epochs = f" {self.pretrain_epochs}" if self.pretrain_epochs is not None else ""
        return f"{name}{epochs} ({format_duration(self.seconds)})"


def format_duration(seconds: float) -> str:
    """Compact wall time: ``"40s"``, ``"12m"``, ``"1.5h"``, ``"35h"``."""
    seconds = max(float(seconds), 0.0)
    if seconds < 59.5:
        return f"{seconds:.0f}s"
    if seconds < 3570:
        return f"{seconds / 60:.0f}m"
    hours = seconds / 3600
    if hours < 9.95:
        text = f"{hours:.1f}"
        return (text[:-2] if text.endswith(".0") else text) + "h"
    return f"{hours:.0f}h"


def build_table(rows: Sequence[MethodRow], k: int) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the table.

    Args:
        rows: one per method, each with ``k`` fold accuracies.
        k: number of folds.

    Returns:
        ``(header, body)``: header ``["", "0", ..., "k-1", "Avg.", "Err."]`` and one
        list of ``k + 3`` strings per method. The Avg. cell carries the difference to
        the ``random`` row, when there is one.
    """
    header = ["", *[str(i) for i in range(k)], "Avg.", "Err."]
    base = next((r.avg for r in rows if r.name == BASELINE), None)
    body = []
    for r in rows:
        if len(r.fold_acc) != k:
            raise ValueError(f"method {r.name} has {len(r.fold_acc)} fold results, expected {k}")
        avg = round(r.avg, 2)
        avg_cell = f"{avg:.2f}"
        if base is not None:
            avg_cell += f"({avg - round(base, 2):+.2f})"
        body.append([r.label(), *[f"{a:.2f}" for a in r.fold_acc], avg_cell,
                     f"{100.0 - avg:.2f}"])
    return header, body


def to_markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table (first column left-aligned, the others centred)."""
    head = ["", *header[1:-2], "Avg. ↑", "Err. ↓"]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join([":" + "-" * (widths[0] + 1)]
                            + [":" + "-" * w + ":" for w in widths[1:]]) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in body]
    return "\n".join(lines) + "\n"


def to_csv(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """The table as CSV text (first header cell ``method``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", *header[1:]])
    writer.writerows(body)
    return buf.getvalue()


def save_confusion_figure(
    path: str | os.PathLike, confusion: np.ndarray, class_names: Sequence[str], title: str
) -> None:
    """Write a confusion-matrix PNG: colour = row-normalised rate, text = counts.

    Args:
        path: output PNG (written atomically).
        confusion: ``(K, K)`` counts, rows true class, columns prediction.
        class_names: ``K`` names.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.int64)
    k = len(class_names)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.1 * k + 2))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = 100.0 * np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"{title}\naccuracy {acc:.2f}% over {confusion.sum()} test samples")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
