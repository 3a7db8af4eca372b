"""E43's tables: per-method accuracy of `dama-det classify` runs and the pre-registered
paired differences along the chain random -> init-tn-lpos -> init-tn -> init (dev) and
the headline's comparisons (eval). Rule checks use the population std of the per-fold
differences, as E43's header says; the tables show mean ± sample std, as E42's.

    python benchmarks/transfer/e43_table.py OUT/dev [OUT/eval]

A folder ``eval_timm`` beside ``eval`` (random init with timm's position table, the
same folds) joins the eval table as ``random-timm``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from e42_table import folds, ms

PAIRS = {  # (a, b, rule): a - b
    "dev": [("init-tn-lpos", "random", "(h) export path, no rule"),
            ("init-tn", "init-tn-lpos", "(p) sin-cos table"),
            ("init", "init-tn", "(w) block init"),
            ("init", "random", "whole export")],
    "eval": [("dama", "random", "(b) headline"), ("dama", "mae", "(c) DAMA >= MAE"),
             ("dama", "init", "pretraining's own gain"), ("mae", "init", "MAE's own gain"),
             ("init", "random", "the export"), ("random", "random-timm", "new random baseline"),
             ("init", "random-timm", "the export vs timm")],
}


def main(runs: list[Path]) -> None:
    for run in runs:
        res = folds(run)
        timm = run.parent / f"{run.name}_timm"
        if timm.is_dir():
            split = [json.loads((r / "folds.json").read_text())["folds"] for r in (run, timm)]
            if split[0] != split[1]:
                raise SystemExit(f"{timm} has other folds than {run}")
            res["random-timm"] = folds(timm)["random"]
        print(f"\n{run.name}\n\n| method | test accuracy per fold (%) | test | train folds |")
        print("|---|---|---|---|")
        for method, by_fold in res.items():
            ks = sorted(by_fold)
            test = [by_fold[k]["test_acc"] for k in ks]
            train = [by_fold[k]["train_acc"] for k in ks]
            print(f"| {method} | {' / '.join(f'{x:.0f}' for x in test)} | {ms(test)} | "
                  f"{ms(train)} |")
        print("\n| paired difference | per fold | mean ± sample std | population std | "
              "mean > pop. std |")
        print("|---|---|---|---|---|")
        for a, b, rule in PAIRS["eval" if "eval" in run.name else "dev"]:
            if a not in res or b not in res:
                continue
            ks = sorted(set(res[a]) & set(res[b]))
            d = np.array([res[a][k]["test_acc"] - res[b][k]["test_acc"] for k in ks])
            print(f"| {a} - {b}, {rule} | {' / '.join(f'{x:+.0f}' for x in d)} | "
                  f"{ms(d, sign=True)} | {d.std():.1f} | {'yes' if d.mean() > d.std() else 'no'} |")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
