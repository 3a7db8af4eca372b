"""E41's tables from its probe results: cell-type probe balanced accuracy against
pretraining epochs, per method and readout, mean ± std over seeds, and the per-seed
paired differences the rules use.

    python benchmarks/transfer/e41_table.py OUT/probes
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

METHODS = ("dama", "mae")
POINTS = ("untrained", "ep15", "ep30", "ep60")
STEPS = {"untrained": 0, "ep15": 225, "ep30": 450, "ep60": 900}


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


def main(root: Path) -> None:
    for probe in ("linear", "knn"):
        res = load(root, probe)
        seeds = sorted({k[1] for k in res})
        for pool in ("centre", "mean"):
            print(f"\n{probe} probe, `{pool}` readout, balanced accuracy (%), seeds "
                  f"{', '.join(map(str, seeds))}\n")
            print("| method | " + " | ".join(f"{p} ({STEPS[p]} steps)" for p in POINTS) + " |")
            print("|---|" + "---|" * len(POINTS))
            for m in METHODS:
                cells = [ms([res[(m, s, p, pool)] for s in seeds if (m, s, p, pool) in res])
                         for p in POINTS]
                print(f"| {m} | " + " | ".join(cells) + " |")
            rows = []
            for m in METHODS:
                d = [res[(m, s, "ep60", pool)] - res[(m, s, "untrained", pool)] for s in seeds
                     if (m, s, "ep60", pool) in res]
                rows.append((f"{m}-900 - its untrained export", d))
            d = [res[("dama", s, "ep60", pool)] - res[("mae", s, "ep60", pool)] for s in seeds
                 if ("dama", s, "ep60", pool) in res and ("mae", s, "ep60", pool) in res]
            rows.append(("dama-900 - mae-900", d))
            print()
            for name, d in rows:
                d = np.asarray(d) * 100
                print(f"| {name} | {' / '.join(f'{v:+.1f}' for v in d)} | "
                      f"{d.mean():+.1f} ± {d.std(ddof=1) if len(d) > 1 else 0:.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
