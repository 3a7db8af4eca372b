"""``dama-det eval`` as a function: :func:`run_eval` takes the command's typed options
(:class:`~.options.EvalOptions`), evaluates every method against the ground truth and
writes metrics, summary and figures."""
from __future__ import annotations

from pathlib import Path

from .options import EvalOptions, max_dets_list, parse_named_sources


def run_eval(opts: EvalOptions) -> Path:
    """Evaluate as ``opts`` say: the entry function of ``dama-det eval``.

    Returns:
        ``opts.out/metrics.json``.

    Raises:
        DamaUserError: a bad option, a missing input or an output folder that cannot be
            written (checked before anything is computed).
    """
    from ..utils import check_output_dir
    from .report import evaluate_report, write_report

    check_output_dir(opts.out)
    opts.validate()
    report = evaluate_report(
        opts.gt, parse_named_sources(opts.results), max_dets=max_dets_list(opts.max_dets),
        iou_thresholds=opts.iou_thresholds, area_ranges=opts.area_ranges,
        cell_iou_thresholds=opts.cell_iou_thresholds, score_threshold=opts.score_threshold,
        engine=opts.engine)
    write_report(report, opts.out, figures=not opts.no_figures)
    for name, m in report.metrics().items():
        parts = [f"{t} AP {m[t]['AP']:.4f}" for t in ("bbox", "segm")
                 if t in m and m[t]["AP"] is not None]
        first = next(iter(m["cell"]), None)
        if first:
            parts.append(f"F1@{first} {m['cell'][first]['f1']:.4f}")
        print(f"{name}: " + ", ".join(parts))
    figures = "" if opts.no_figures else f" and figures in {Path(opts.out) / 'figures'}"
    print(f"wrote {Path(opts.out) / 'metrics.json'}{figures}")
    return Path(opts.out) / "metrics.json"
