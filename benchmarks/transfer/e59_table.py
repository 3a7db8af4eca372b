"""E59's tables: E57's protocol with 16-px patches, and the pre-registered per-(seed,
fold) paired differences against E57's 8-px runs on the same folds.

    python benchmarks/transfer/e59_table.py E57_OUT

E57_OUT/p16/seed{0,1,2} (init, dama-3600) and E57_OUT/p16/random, as
`e59_classify_patch16_large_test.sh` writes them; E57's 8-px runs in E57_OUT.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from e51_table import accuracy, diff, folds_hashes, paired, per_method
from e57_table import load


def main(e57: Path) -> None:
    fine, coarse = load(e57), load(e57 / "p16")
    if len(folds_hashes([e57 / n for n in fine] + [e57 / "p16" / n for n in coarse])) != 1:
        raise SystemExit(f"{e57} and {e57 / 'p16'} were not run on the same folds")
    per_method("E59: 16-px patches, E57's crops and folds, pretraining seed 0 and random "
               "init", {**coarse.get("seed0", {}), **coarse.get("random", {})}, digits=2)
    seeds = [s for s in (0, 1, 2) if f"seed{s}" in coarse]
    print("\n| pretraining seed | init 16 px | DAMA-3600 16 px | DAMA - init (16 px) | "
          "DAMA-1200 8 px (E57) |")
    print("|---|---|---|---|---|")
    own, recipe = [], []
    for s in seeds:
        c = coarse[f"seed{s}"]
        d = diff(c["dama-3600"], c["init"])
        own.append(d)
        f = fine.get(f"seed{s}-dama", {}).get("dama-1200")
        if f is not None:
            recipe.append(diff(f, c["dama-3600"]))
        print(f"| {s} | {accuracy(c['init']).mean():.2f} | {accuracy(c['dama-3600']).mean():.2f} "
              f"| {d.mean():+.2f} | {accuracy(f).mean() if f else float('nan'):.2f} |")
    rows = [("DAMA-3600 - init (16 px), all (seed, fold) pairs, rule (m)", np.concatenate(own))]
    if recipe:
        rows.append(("DAMA-1200 (8 px) - DAMA-3600 (16 px), all pairs, rule (n)",
                     np.concatenate(recipe)))
    inits = [diff(fine[f"seed{s}-init"]["init"], coarse[f"seed{s}"]["init"])
             for s in seeds if f"seed{s}-init" in fine]
    if inits:
        rows.append(("init 8 px - init 16 px, all pairs", np.concatenate(inits)))
    if "random" in coarse and "random" in fine:
        rows.append(("random 8 px - random 16 px",
                     diff(fine["random"]["random"], coarse["random"]["random"])))
    paired(rows, digits=2)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
