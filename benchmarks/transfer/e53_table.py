"""E53's rule (c): 8-px-patch encoders against E49's 16-px ones at equal pretraining
compute, per seed, for each method, readout and probe; and the two untrained exports.

    python benchmarks/transfer/e53_table.py E53_OUT/probes E49_OUT/probes \
        [--points ep80 ep240]

Each row pairs the same method and seed: E53's probe at its point minus E49's at its.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from e41_table import METHODS, load


def main(fine: Path, coarse: Path, points: tuple[str, str]) -> None:
    for probe in ("linear", "knn"):
        a, b = load(fine, probe), load(coarse, probe)
        for pool in ("centre", "mean"):
            print(f"\n{probe} probe, `{pool}` readout: 8-px minus 16-px patches, "
                  f"balanced accuracy points\n")
            print("| comparison | per seed | mean ± std |")
            print("|---|---|---|")
            for m in METHODS:
                for pa, pb in (("untrained", "untrained"), points):
                    seeds = sorted(s for (mm, s, p, pl) in a
                                   if (mm, p, pl) == (m, pa, pool) and (m, s, pb, pool) in b)
                    if not seeds:
                        continue
                    d = np.array([a[(m, s, pa, pool)] - b[(m, s, pb, pool)] for s in seeds]) * 100
                    sd = d.std(ddof=1) if len(d) > 1 else 0.0
                    print(f"| {m} 8-px {pa} - 16-px {pb} | {' / '.join(f'{v:+.1f}' for v in d)}"
                          f" | {d.mean():+.1f} ± {sd:.1f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fine", type=Path, help="E53's probe folder (8-px patches)")
    ap.add_argument("coarse", type=Path, help="E49's probe folder (16-px patches)")
    ap.add_argument("--points", nargs=2, default=["ep80", "ep240"], metavar=("FINE", "COARSE"),
                    help="the pretraining points paired (default: ep80 ep240, equal compute)")
    a = ap.parse_args()
    main(a.fine, a.coarse, tuple(a.points))
