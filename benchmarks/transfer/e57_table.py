"""E57's tables: E54's 8-px fine-tuning on 2000 new crops (5 folds of 400 test crops,
450 training crops per fold via `--label-fraction 0.28`), and the pre-registered per-fold
paired differences.

    python benchmarks/transfer/e57_table.py E57_OUT                     # E57
    python benchmarks/transfer/e57_table.py E57_OUT/f0.1 0.1 E57_OUT    # E58 beside E57

RUNS/seed{0,1,2}-{init,dama,mae} and RUNS/random, as `e57_classify_patch8_large_test.sh`
writes them; runs not there are left out. Every run must share the folds (their hash)
and the label fraction (default E57's 0.28). With a third argument (E57's runs), each
paired gain is also set against E57's on the same test folds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from e42_table import folds
from e51_table import accuracy, diff, folds_hashes, paired, per_method


def load(out: Path, fraction: float = 0.28) -> dict[str, dict]:
    """``{run name: {method: {fold: result}}}`` of the finished runs, checked alike."""
    runs = {}
    for d in sorted(out.iterdir()):
        if not (d / "results.json").is_file():
            continue
        settings = json.loads((d / "results.json").read_text())
        if settings.get("label_fraction") != fraction or settings.get("k") != 5:
            raise SystemExit(f"{d}: not the setting asked (label_fraction {fraction}, 5 folds)")
        runs[d.name] = folds(d)
    if not runs:
        raise SystemExit(f"{out}: no finished run")
    if len(folds_hashes([out / name for name in runs])) != 1:
        raise SystemExit(f"{out}: the runs were not made on the same folds")
    return runs


def seed0(runs: dict[str, dict]) -> dict[str, dict]:
    """``{method: {fold: result}}`` of pretraining seed 0's runs and random init."""
    return {m: r for name, res in runs.items() for m, r in res.items()
            if name.startswith("seed0-") or name == "random"}


GAINS = (("dama-1200", "init"), ("dama-1200", "random"), ("dama-1200", "mae-1200"),
         ("mae-1200", "init"), ("init", "random"))


def main(out: Path, fraction: float = 0.28, e57: Path | None = None) -> None:
    runs = load(out, fraction)
    one = seed0(runs)
    n_train = {r["n_train"] for res in one.values() for r in res.values()}
    n_test = {r["n_test"] for res in one.values() for r in res.values()}
    per_method(f"8-px patches, 2000 new crops, 5 folds (test crops per fold {n_test}, "
               f"training crops {n_train}, label fraction {fraction}), pretraining seed 0",
               one, digits=2)
    rules = ("h", "i", "j", "-", "-") if e57 is None else ("k", "l", "-", "-", "-")
    rows = [(f"{a} - {b}, rule ({r})", diff(one[a], one[b]))
            for (a, b), r in zip(GAINS, rules) if a in one and b in one]
    paired(rows, digits=2)
    if e57 is not None:
        ref_runs = load(e57)
        both = [out / name for name in runs] + [e57 / name for name in ref_runs]
        if len(folds_hashes(both)) != 1:
            raise SystemExit(f"{out} and {e57} were not run on the same folds")
        ref = seed0(ref_runs)
        paired([(f"({a} - {b}) at {fraction} minus at 0.28 (E57)",
                 diff(one[a], one[b]) - diff(ref[a], ref[b]))
                for a, b in GAINS if {a, b} <= set(one) and {a, b} <= set(ref)], digits=2)

    pairs = {}
    for seed in (0, 1, 2):
        res = {**runs.get(f"seed{seed}-init", {}), **runs.get(f"seed{seed}-dama", {})}
        if {"init", "dama-1200"} <= set(res):
            pairs[seed] = res
    if len(pairs) < 2:
        return
    print("\nE57 per pretraining seed (test accuracy, %)\n")
    print("| pretraining seed | init | DAMA-1200 | DAMA - init |")
    print("|---|---|---|---|")
    gains = []
    for seed, res in sorted(pairs.items()):
        d = diff(res["dama-1200"], res["init"])
        gains.append(d)
        print(f"| {seed} | {accuracy(res['init']).mean():.2f} | "
              f"{accuracy(res['dama-1200']).mean():.2f} | {d.mean():+.2f} ({len(d)} folds) |")
    paired([("DAMA-1200 - init, all (seed, fold) pairs, rule (h')", np.concatenate(gains))],
           digits=2)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3, 4):
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.28,
         Path(sys.argv[3]) if len(sys.argv) > 3 else None)
