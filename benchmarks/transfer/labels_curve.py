"""Item 4's AP-vs-labels curve, assembled from several comparisons of one dataset.

The transfer study ran each label fraction as its own comparison (E35 at 10 %, E38 at
25 %, E36 / E36b / E37 at 100 % of DSB2018's training images), so no single
``dama-det compare`` output holds the whole curve. This script reads their output
folders, evaluates every (method, seed) prediction alone into
``OUT/eval/peek_<method>_seed<k>`` (``..._f<fraction>`` where a description has several
fractions; skipped where it exists: the same evaluation as the notes' per-seed tables),
and writes

- a markdown table: mask AP per method and fraction (mean ± std over seeds), and the
  paired differences named by ``--pairs`` (per seed, mean ± std, one-sample t-test);
- a figure: mask AP against the labelled share (left) and the paired differences with
  each seed as a dot (right).

Several ``--run`` items may share a fraction (e.g. seeds 0-2 and 3-4 in two folders);
a (method, seed) found twice at one fraction is an error. Usage::

    python benchmarks/transfer/labels_curve.py \\
        --run 0.1:benchmarks/transfer/e35_labels10_2480_val.yaml:/work/exp/e35 \\
        --run 1.0:benchmarks/transfer/e37_labels100_seeds34_val.yaml:/work/exp/e37 \\
        --methods random init dama-2480 --pairs dama-2480-init dama-2480-random \\
        --figure docs/images/dsb2018_ap_vs_labels.png \\
        --out benchmarks/results/labels_curve_dsb2018.md
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from dama_det.errors import DamaUserError
from dama_det.pipeline.compare import Comparison
from dama_det.pipeline.compare_results import mean_std
from dama_det.pipeline.run_spec import load_run_spec
from dama_det.utils.io import atomic_write_bytes

#: per (fraction, method, seed): mask AP (%)
Scores = dict[tuple[float, str, int], float]


def parse_run(text: str) -> tuple[float, Path, Path]:
    """``FRACTION:DESCRIPTION:OUT`` -> (fraction, description, output folder)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected FRACTION:DESCRIPTION:OUT")
    try:
        fraction = float(parts[0])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run {text!r}: {parts[0]!r} is not a fraction")
    return fraction, Path(parts[1]), Path(parts[2])


def parse_pair(text: str, methods: list[str]) -> tuple[str, str]:
    """``A-B`` (two of ``methods``, which may contain '-') -> (A, B)."""
    for a in methods:
        if text.startswith(a + "-") and text[len(a) + 1:] in methods:
            return a, text[len(a) + 1:]
    raise DamaUserError(f"--pairs {text!r}: expected A-B with A and B among --methods {methods}")


def collect_scores(runs: list[tuple[float, Path, Path]], methods: list[str]) -> Scores:
    """Mask AP of every (method, seed) prediction found in the runs' folders."""
    scores: Scores = {}
    for fraction, description, out in runs:
        spec = load_run_spec(description)
        if fraction not in spec.label_fractions:
            raise DamaUserError(f"{description}: label_fraction {spec.label_fractions} "
                                f"does not contain {fraction:g}")
        comparison = Comparison(spec, out, log=lambda _msg: None)
        _, val, _, _ = comparison.prepare_data()
        for m in spec.methods:
            if m.name not in methods:
                continue
            for seed in spec.seeds:
                preds = comparison.predictions_file(m, seed, fraction)
                if not preds.exists():
                    continue
                key = (fraction, m.name, seed)
                if key in scores:
                    raise DamaUserError(f"{out}: {m.name} seed {seed} at {fraction:g} "
                                        "is in two --run folders")
                name = f"peek_{m.name}_seed{seed}"  # the notes' name, one fraction per run
                if len(spec.label_fractions) > 1:
                    name += f"_f{fraction:g}"
                metrics = comparison.evaluate({m.name: preds}, val, name)
                scores[key] = 100 * metrics[m.name]["segm"]["AP"]
    return scores


def _seeds(scores: Scores, fraction: float, method: str) -> list[int]:
    return sorted(s for f, m, s in scores if f == fraction and m == method)


def values(scores: Scores, fraction: float, method: str) -> list[float]:
    """``method``'s mask AP at ``fraction``, in seed order."""
    return [scores[(fraction, method, s)] for s in _seeds(scores, fraction, method)]


def paired(scores: Scores, fraction: float, a: str, b: str) -> dict:
    """Per-seed ``a - b`` on the seeds both have: values, mean, population std, t-test p."""
    seeds = sorted(set(_seeds(scores, fraction, a)) & set(_seeds(scores, fraction, b)))
    d = [scores[(fraction, a, s)] - scores[(fraction, b, s)] for s in seeds]
    p = float(stats.ttest_1samp(d, 0).pvalue) if len(d) > 1 else float("nan")
    return {"seeds": seeds, "values": np.array(d), **mean_std(d), "p": p}


def table_lines(scores: Scores, methods: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    """The markdown tables: mask AP per method and fraction, then the paired differences."""
    fractions = sorted({f for f, _, _ in scores})
    head = "| " + " | ".join(f"{100 * f:g} % labels" for f in fractions) + " |"
    lines = ["| mask AP (%), mean ± std (seeds) " + head, "|---" * (len(fractions) + 1) + "|"]
    for m in methods:
        cells = []
        for f in fractions:
            st = mean_std(values(scores, f, m))
            cells.append(f"{st['mean']:.2f} ± {st['std']:.2f} ({st['n']})" if st["n"] else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "| paired, mask AP per seed; mean ± std (p) " + head,
              "|---" * (len(fractions) + 1) + "|"]
    for a, b in pairs:
        cells = []
        for f in fractions:
            r = paired(scores, f, a, b)
            cells.append(" / ".join(f"{v:+.2f}" for v in r["values"])
                         + f"; **{r['mean']:+.2f} ± {r['std']:.2f}** (p {r['p']:.2f})"
                         if len(r["values"]) else "-")
        lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return lines


def plot(scores: Scores, methods: list[str], pairs: list[tuple[str, str]], title: str,
         path: Path) -> Path:
    """Mask AP against the labelled share (left) and the paired differences (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted({f for f, _, _ in scores})
    x = np.array([100 * f for f in fractions])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for m in methods:
        sts = [mean_std(values(scores, f, m)) for f in fractions]
        left.errorbar(x, [st["mean"] for st in sts], yerr=[st["std"] for st in sts],
                      marker="o", capsize=3, label=m)
    left.set_ylabel("mask AP (%)")
    for i, (a, b) in enumerate(pairs):
        rs = [paired(scores, f, a, b) for f in fractions]
        shift = 1 + 0.04 * (i - (len(pairs) - 1) / 2)
        color = f"C{len(methods) + i}"  # not a colour of the left panel's methods
        right.errorbar(x * shift, [r["mean"] for r in rs], yerr=[r["std"] for r in rs],
                       marker="s", capsize=3, color=color, label=f"{a} - {b}")
        for xf, r in zip(x * shift, rs):
            right.scatter([xf] * len(r["values"]), r["values"], s=12, alpha=0.5, color=color)
    right.axhline(0, color="black", lw=0.8)
    right.set_ylabel("paired mask AP difference (points)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel("labelled training images (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=parse_run, action="append", required=True,
                        metavar="FRACTION:DESCRIPTION:OUT", help="a comparison and its folder")
    parser.add_argument("--methods", nargs="+", required=True, help="the methods to show")
    parser.add_argument("--pairs", nargs="*", default=[], metavar="A-B",
                        help="paired differences to show (A and B among --methods)")
    parser.add_argument("--title", default="DSB2018 val: mask AP against labels")
    parser.add_argument("--figure", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--out", type=Path, required=True, help="the markdown to write")
    args = parser.parse_args(argv)
    try:
        pairs = [parse_pair(p, args.methods) for p in args.pairs]
        scores = collect_scores(args.run, args.methods)
    except DamaUserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not scores:
        print("error: no predictions of --methods in the --run folders", file=sys.stderr)
        return 2
    sources = ", ".join(f"`{d.stem}` ({100 * f:g} %)" for f, d, _ in args.run)
    lines = [f"## {args.title}", "",
             f"Written by `benchmarks/transfer/labels_curve.py` from {sources}: each (method, "
             "seed) evaluated alone; std is the population std over seeds (the count in "
             "brackets); paired differences on the seeds both methods have, in seed order.",
             ""] + table_lines(scores, args.methods, pairs)
    figure = plot(scores, args.methods, pairs, args.title, args.figure)
    text = "\n".join(lines) + f"\n\n![{args.title}]({figure})\n"
    atomic_write_bytes(args.out, text.encode())
    print(text)
    print(f"wrote {args.out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
