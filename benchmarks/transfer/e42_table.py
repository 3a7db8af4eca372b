"""E42's tables from `dama-det classify` results: test / train-fold accuracy per method,
mean ± std over the folds, and per-fold paired differences to random init.

    python benchmarks/transfer/e42_table.py OUT/eval_paper OUT/eval_1.0_1e-2 [OUT/dev_...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def folds(run: Path) -> dict[str, dict[int, dict]]:
    """``{method: {fold: result}}`` of one classify output folder."""
    res = json.loads((run / "fold_results.json").read_text())["methods"]
    return {m: {int(k): v for k, v in r["folds"].items()} for m, r in res.items()}


def ms(values, sign: bool = False) -> str:
    v = np.asarray(values, float)
    m = f"{v.mean():+.1f}" if sign else f"{v.mean():.1f}"
    return f"{m} ± {v.std(ddof=1):.1f}" if len(v) > 1 else m


def main(runs: list[Path]) -> None:
    base = None
    print("| run | method | test accuracy per fold (%) | test | train folds | vs random (paired) "
          "| vs init (paired) |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        res = folds(run)
        if base is None and res.get("random") is not None:
            base = res["random"]
        for method, by_fold in res.items():
            ks = sorted(by_fold)
            test = [by_fold[k]["test_acc"] for k in ks]
            train = [by_fold[k]["train_acc"] for k in ks]
            diffs = []
            for ref_name in ("random", "init"):
                ref = res.get(ref_name)
                d = ""
                if ref is not None and method != ref_name and set(ks) <= set(ref):
                    x = [by_fold[k]["test_acc"] - ref[k]["test_acc"] for k in ks]
                    d = f"{' / '.join(f'{v:+.0f}' for v in x)} = {ms(x, sign=True)}"
                diffs.append(d)
            print(f"| {run.name} | {method} | {' / '.join(f'{x:.0f}' for x in test)} | "
                  f"{ms(test)} | {ms(train)} | {diffs[0]} | {diffs[1]} |")
    if base is not None and len(runs) > 1:
        for run in runs[1:]:
            other = folds(run).get("random")
            if other and set(other) == set(base):
                d = [other[k]["test_acc"] - base[k]["test_acc"] for k in sorted(base)]
                print(f"\nrandom init, {run.name} - {runs[0].name} (paired per fold): "
                      f"{' / '.join(f'{x:+.0f}' for x in d)} = {ms(d, sign=True)}")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
