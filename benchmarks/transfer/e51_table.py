"""E50's, E51's and E52's tables: `dama-det classify` test accuracy per method, and the
pre-registered per-fold paired differences (rules use the population std, as E43).

    python benchmarks/transfer/e51_table.py E50_OUT E51_OUT [E52_OUT]

E51_OUT/dev/{mean,centre}: the pooling decision (centre - mean per method, rule (p));
E51_OUT/eval/centre-{1,2} (run only if (p) held): E50's methods and folds with centre
pooling, E50's pairs again and each method's centre - mean against E50.
E52_OUT/seed{1,2}: init / dama-3600 / mae-3600 of E49's other pretraining seeds on the
same folds; with seed 0 from E51, the (seed, fold) pairs of rules (g) and (c).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from e42_table import folds, ms

HEADLINE = [("dama-3600", "random", "(b) DAMA beats random init"),
            ("dama-3600", "mae-3600", "(c) DAMA >= MAE"),
            ("dama-3600", "init", "pretraining's own gain"),
            ("dama-900", "init", "900 steps' own gain"),
            ("mae-3600", "init", "MAE's own gain"),
            ("init", "random", "the untrained export")]


def accuracy(by_fold: dict[int, dict]) -> np.ndarray:
    return np.array([by_fold[k]["test_acc"] for k in sorted(by_fold)])


def diff(a: dict[int, dict], b: dict[int, dict]) -> np.ndarray:
    """Per-fold ``a - b`` test accuracy over the folds both have."""
    return np.array([a[k]["test_acc"] - b[k]["test_acc"] for k in sorted(set(a) & set(b))])


def folds_hashes(runs: list[Path]) -> set[str]:
    """The ``folds_sha256`` of every method stored in these classify output folders."""
    return {m["fingerprint"]["folds_sha256"] for p in runs
            for m in json.loads((p / "fold_results.json").read_text())["methods"].values()}


def per_method(title: str, res: dict, digits: int = 0) -> None:
    """Per-fold test accuracy of each method (``digits`` decimals per fold)."""
    print(f"\n{title}\n\n| method | test accuracy per fold (%) | mean ± std (population) |")
    print("|---|---|---|")
    for method, by_fold in res.items():
        a = accuracy(by_fold)
        print(f"| {method} | {' / '.join(f'{x:.{digits}f}' for x in a)} | "
              f"{a.mean():.1f} ± {a.std():.1f} |")


def paired(rows: list[tuple[str, np.ndarray]], digits: int = 0) -> None:
    """Per-fold paired differences, their mean, std and the rules' test (mean > pop. std)."""
    print("\n| paired difference | per fold | mean ± sample std | population std | "
          "mean > pop. std | folds ahead / behind |")
    print("|---|---|---|---|---|---|")
    for name, d in rows:
        print(f"| {name} | {' / '.join(f'{x:+.{digits}f}' for x in d)} | {ms(d, sign=True)} | "
              f"{d.std():.2f} | {'yes' if d.mean() > d.std() else 'no'} | "
              f"{(d > 0).sum()} / {(d < 0).sum()} |")


def headline(res: dict) -> list[tuple[str, np.ndarray]]:
    return [(f"{a} - {b}, {rule}", diff(res[a], res[b]))
            for a, b, rule in HEADLINE if a in res and b in res]


def main(e50: Path, e51: Path) -> None:
    mean_eval = folds(e50)
    per_method("E50: global average pooling (eval crops)", mean_eval)
    paired(headline(mean_eval))
    dev = {pool: folds(e51 / "dev" / pool) for pool in ("mean", "centre")
           if (e51 / "dev" / pool / "fold_results.json").is_file()}
    for pool, res in dev.items():
        per_method(f"E51 dev, --pool {pool}", res)
    if len(dev) == 2:
        paired([(f"{m}: centre - mean, rule (p)", diff(dev["centre"][m], r))
                for m, r in dev["mean"].items() if m in dev["centre"]])
    parts = [e51 / "eval" / f"centre-{i}" for i in (1, 2)]
    if all((p / "fold_results.json").is_file() for p in parts):
        if len(folds_hashes([e50, *parts])) != 1:
            raise SystemExit(f"{e51 / 'eval'} has other folds than {e50}")
        centre = {m: r for p in parts for m, r in folds(p).items()}
        per_method("E51 eval: --pool centre on E50's folds", centre)
        paired(headline(centre) + [
            (f"{m}: centre - mean (E50)", diff(centre[m], mean_eval[m]))
            for m in mean_eval if m in centre])


def seeds_table(e51: Path, e52: Path) -> None:
    """E52: per pretraining seed means and the pooled (seed, fold) paired differences."""
    runs = {0: {m: r for i in (1, 2) for m, r in folds(e51 / "eval" / f"centre-{i}").items()}}
    for seed in (1, 2):
        if (e52 / f"seed{seed}" / "fold_results.json").is_file():
            runs[seed] = folds(e52 / f"seed{seed}")
    methods = ("init", "dama-3600", "mae-3600")
    print("\nE52: centre pooling, E50's folds, per pretraining seed (test accuracy, %)\n")
    print("| pretraining seed | " + " | ".join(methods) + " | DAMA - init | DAMA - MAE |")
    print("|---|" + "---|" * (len(methods) + 2))
    pooled: dict[str, list[np.ndarray]] = {"g": [], "c": [], "r": []}
    for seed, res in runs.items():
        cells = [f"{accuracy(res[m]).mean():.1f}" if m in res else "" for m in methods]
        g = diff(res["dama-3600"], res["init"]) if {"dama-3600", "init"} <= set(res) else None
        c = (diff(res["dama-3600"], res["mae-3600"])
             if {"dama-3600", "mae-3600"} <= set(res) else None)
        print(f"| {seed} | " + " | ".join(cells) + " | "
              + " | ".join("" if d is None else f"{d.mean():+.1f} ({len(d)} folds)" for d in (g, c))
              + " |")
        for key, d in (("g", g), ("c", c)):
            if d is not None:
                pooled[key].append(d)
        if "dama-3600" in res:
            pooled["r"].append(diff(res["dama-3600"], runs[0]["random"]))
    paired([(name, np.concatenate(pooled[key])) for key, name in (
        ("g", "DAMA-3600 - init, all (seed, fold) pairs, rule (g)"),
        ("c", "DAMA-3600 - MAE-3600, all pairs, rule (c)"),
        ("r", "DAMA-3600 - random (E51's), all pairs")) if pooled[key]])


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    if len(sys.argv) == 4:
        seeds_table(Path(sys.argv[2]), Path(sys.argv[3]))
