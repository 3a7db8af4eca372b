"""E54's tables: `dama-det classify` with 8-px patches on E50's folds, and the
pre-registered per-fold paired differences, within E54 and against E51's 16-px run.

    python benchmarks/transfer/e54_table.py E51_OUT E54_OUT [E55_OUT]

E54_OUT/part{1,2}: random / init and dama-1200 / mae-1200 (8-px); E51_OUT/eval/centre-{1,2}:
the 16-px methods on the same folds (checked by the folds' hash).
E55_OUT/seed{1,2}-{init,dama}: E53's other pretraining seeds' init and dama-1200 on the
same folds; with E54's seed 0, the (seed, fold) pairs of rule (e').
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from e42_table import folds
from e51_table import diff, folds_hashes, paired, per_method


def load(parts: list[Path]) -> tuple[dict, set[str]]:
    """The methods' per-fold results of several classify outputs and their folds' hashes."""
    parts = [p for p in parts if (p / "fold_results.json").is_file()]
    return {m: r for p in parts for m, r in folds(p).items()}, folds_hashes(parts)


def main(e51: Path, e54: Path) -> None:
    coarse, s16 = load([e51 / "eval" / f"centre-{i}" for i in (1, 2)])
    fine, s8 = load([e54 / f"part{i}" for i in (1, 2)])
    if len(s16 | s8) != 1:
        raise SystemExit(f"{e54} and {e51 / 'eval'} were not run on the same folds")
    per_method("E54: --pool centre, 8-px patches, E50's folds", fine)
    rows = [(f"{a} - {b} (8 px), rule ({r})", diff(fine[a], fine[b]))
            for a, b, r in (("dama-1200", "random", "d"), ("dama-1200", "init", "e"),
                            ("dama-1200", "mae-1200", "f"), ("mae-1200", "init", "-"),
                            ("init", "random", "-")) if a in fine and b in fine]
    rows += [(f"{a} (8 px) - {b} (16 px, E51){', rule (g)' if a == 'dama-1200' else ''}",
              diff(fine[a], coarse[b]))
             for a, b in (("dama-1200", "dama-3600"), ("mae-1200", "mae-3600"),
                          ("init", "init"), ("random", "random"))
             if a in fine and b in coarse]
    paired(rows)


def seeds_table(e54: Path, e55: Path) -> None:
    """E55: DAMA-1200 - init per pretraining seed and over all (seed, fold) pairs."""
    seed0, split = load([e54 / f"part{i}" for i in (1, 2)])
    runs = {0: seed0}
    for seed in (1, 2):
        res, s = load([e55 / f"seed{seed}-{m}" for m in ("init", "dama")])
        split |= s
        if {"init", "dama-1200"} <= set(res):
            runs[seed] = res
    if len(split) != 1:
        raise SystemExit(f"{e55} and {e54} were not run on the same folds")
    print("\nE55: 8-px patches, E50's folds, per pretraining seed (test accuracy, %)\n")
    print("| pretraining seed | init | DAMA-1200 | DAMA - init |")
    print("|---|---|---|---|")
    gains, over_random = [], []
    for seed, res in runs.items():
        d = diff(res["dama-1200"], res["init"])
        gains.append(d)
        over_random.append(diff(res["dama-1200"], seed0["random"]))
        print(f"| {seed} | {np.mean([r['test_acc'] for r in res['init'].values()]):.1f} | "
              f"{np.mean([r['test_acc'] for r in res['dama-1200'].values()]):.1f} | "
              f"{d.mean():+.1f} ({len(d)} folds) |")
    paired([("DAMA-1200 - init, all (seed, fold) pairs, rule (e')", np.concatenate(gains)),
            ("DAMA-1200 - random (E54's), all pairs", np.concatenate(over_random))])


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    if len(sys.argv) == 4:
        seeds_table(Path(sys.argv[2]), Path(sys.argv[3]))
