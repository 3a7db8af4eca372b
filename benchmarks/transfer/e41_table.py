"""E41's tables from its probe results: cell-type probe balanced accuracy against
pretraining epochs, per method and readout, mean ± std over seeds, and the per-seed
paired differences the rules use.

    python benchmarks/transfer/e41_table.py OUT/probes [--epochs 15 30 60] [--steps-per-epoch 15]

E49 (a longer schedule): ``--epochs 30 60 120 240``; the paired differences use the
last epoch.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METHODS = ("dama", "mae")


def load(root: Path, probe: str) -> dict:
    """``{(method, seed, point, pool): balanced accuracy}`` of every probe file."""
    out = {}
    for f in sorted(root.glob("*.json")):
        method, seed, point, pool = f.stem.split("-")
        out[(method, int(seed[4:]), point, pool)] = json.loads(f.read_text())[probe][
            "balanced_accuracy"]
    return out


def ms(values) -> str:
    v = np.asarray(values, float) * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def main(root: Path, epochs: list[int], steps_per_epoch: int) -> None:
    points = ["untrained"] + [f"ep{e}" for e in epochs]
    steps = {p: (0 if p == "untrained" else int(p[2:]) * steps_per_epoch) for p in points}
    last, n = points[-1], steps[points[-1]]
    for probe in ("linear", "knn"):
        res = load(root, probe)
        seeds = sorted({k[1] for k in res})
        for pool in ("centre", "mean"):
            print(f"\n{probe} probe, `{pool}` readout, balanced accuracy (%), seeds "
                  f"{', '.join(map(str, seeds))}\n")
            print("| method | " + " | ".join(f"{p} ({steps[p]} steps)" for p in points) + " |")
            print("|---|" + "---|" * len(points))
            for m in METHODS:
                cells = [ms([res[(m, s, p, pool)] for s in seeds if (m, s, p, pool) in res])
                         for p in points]
                print(f"| {m} | " + " | ".join(cells) + " |")
            rows = []
            for m in METHODS:
                d = [res[(m, s, last, pool)] - res[(m, s, "untrained", pool)] for s in seeds
                     if (m, s, last, pool) in res]
                rows.append((f"{m}-{n} - its untrained export", d))
            d = [res[("dama", s, last, pool)] - res[("mae", s, last, pool)] for s in seeds
                 if ("dama", s, last, pool) in res and ("mae", s, last, pool) in res]
            rows.append((f"dama-{n} - mae-{n}", d))
            print()
            for name, d in rows:
                d = np.asarray(d) * 100
                print(f"| {name} | {' / '.join(f'{v:+.1f}' for v in d)} | "
                      f"{d.mean():+.1f} ± {d.std(ddof=1) if len(d) > 1 else 0:.1f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probes", type=Path, help="folder of METHOD-seedS-POINT-POOL.json probe files")
    ap.add_argument("--epochs", type=int, nargs="+", default=[15, 30, 60],
                    help="probed pretraining epochs (default: E41's)")
    ap.add_argument("--steps-per-epoch", type=int, default=15, help="optimiser steps per epoch")
    a = ap.parse_args()
    main(a.probes, a.epochs, a.steps_per_epoch)
