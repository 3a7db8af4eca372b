"""Tables of the transfer study (BENCHMARKS.md, "Transfer study") from `dama-det compare`
output folders.

Each condition is one comparison run of a description in ``benchmarks/transfer/`` (the
factor studied differs between the descriptions, everything else is equal):

    dama-det compare benchmarks/transfer/e1_std.yaml --out outputs/transfer/e1_std
    ...
    python benchmarks/transfer_study.py --run "detector input /255=outputs/transfer/e1_nostd" \\
        --run "detector input standardised=outputs/transfer/e1_std" \\
        --run "pretraining on /255 crops=outputs/transfer/e2_dama_nostd#dama" ... \\
        --notes benchmarks/transfer/notes.md

The script prints, per condition and method, mask and box AP of every seed, their mean ±
std, and the per-seed paired gain over the same condition's ``random`` and ``init``
runs; it writes ``benchmarks/results/transfer_study.md`` (collected into BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _fmt(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def condition_rows(name: str, folder: Path, only: list[str] | None = None) -> list[str]:
    """Markdown rows of one comparison folder (its ``results.json``); ``only`` these
    methods when given (gains still use the folder's ``random`` / ``init``)."""
    summary = json.loads((folder / "results.json").read_text())
    per_seed = {int(k): v for k, v in summary["per_seed"].items()}
    seeds = sorted(per_seed)
    methods = list(per_seed[seeds[0]])
    rows = []
    for m in (only or methods):
        mask = [per_seed[s][m]["segm"]["AP"] for s in seeds]
        box = [per_seed[s][m]["bbox"]["AP"] for s in seeds]
        cells = [name, m, " / ".join(f"{100 * v:.1f}" for v in mask), _fmt(mask), _fmt(box)]
        for ref in ("random", "init"):
            if ref in methods:
                diff = [per_seed[s][m]["segm"]["AP"] - per_seed[s][ref]["segm"]["AP"]
                        for s in seeds]
                cells.append(f"{100 * np.mean(diff):+.1f} ± {100 * np.std(diff):.1f}")
            else:
                cells.append("")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR[#M,M]",
                        help="a condition name and its `dama-det compare` output folder, "
                        "optionally only the listed methods")
    parser.add_argument("--notes", type=Path, default=None,
                        help="markdown written by hand (set-up, conclusions) placed above "
                             "the table")
    parser.add_argument("--after", type=Path, default=None,
                        help="markdown written by hand placed below the table (related studies)")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "transfer_study.md")
    args = parser.parse_args()
    head = ["| condition | method | mask AP per seed | mask AP | box AP | mask AP gain vs random "
            "| mask AP gain vs init |", "|---|---|---|---|---|---|---|"]
    rows = []
    for item in args.run:
        name, _, rest = item.partition("=")
        folder, _, only = rest.partition("#")
        rows += condition_rows(name, Path(folder), only.split(",") if only else None)
    load = os.getloadavg()
    text = [args.notes.read_text().strip() if args.notes else "# Transfer study", "",
            *head, *rows, "",
            f"AP in %, mean ± std over seeds (population std); gains are per-seed paired "
            f"differences. Table written by `benchmarks/transfer_study.py` (load average when "
            f"written: {load[0]:.1f})."]
    if args.after:
        text += ["", args.after.read_text().strip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text) + "\n")
    print("\n".join(head + rows))


if __name__ == "__main__":
    main()
