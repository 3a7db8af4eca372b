"""E44's table: the dense probe's balanced accuracy per seed for the untrained export
with (`init`) and without (`init-raw`, E39's condition) its input standardisation, and
DAMA-2480, with the pre-registered paired differences (population std).

    python benchmarks/transfer/e44_table.py OUT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

E39 = {"init-raw": [84.5, 80.6, 81.6], "dama2480": [92.4, 91.1, 90.1]}  # E39's init / DAMA-2480


def main(out: Path) -> None:
    seeds = sorted(int(p.name[4:]) for p in out.glob("seed*"))
    acc = {e: [100 * json.loads((out / f"seed{s}" / f"probe_{e}.json").read_text())
                ["linear"]["balanced_accuracy"] for s in seeds]
           for e in ("init_raw", "init", "dama2480")}
    print("| encoder | balanced accuracy, seeds " + " / ".join(map(str, seeds))
          + " (%) | mean ± std | E39 (old machine) |")
    print("|---|---|---|---|")
    for e, v in acc.items():
        old = E39.get(e.replace("_", "-"))
        print(f"| {e.replace('_', '-')} | {' / '.join(f'{x:.1f}' for x in v)} | "
              f"{np.mean(v):.1f} ± {np.std(v):.1f} | {' / '.join(map(str, old)) if old else ''} |")
    for a, b, rule in (("dama2480", "init", "(a)"), ("init", "init_raw", "(b) the bug"),
                       ("dama2480", "init_raw", "E39's reading")):
        d = np.subtract(acc[a], acc[b])
        ok = (d > 0).all() and d.mean() > d.std()
        print(f"| {a} - {b}, {rule} | {' / '.join(f'{x:+.1f}' for x in d)} | "
              f"{d.mean():+.1f} ± {d.std():.1f} | every seed > 0 and mean > std: "
              f"{'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
