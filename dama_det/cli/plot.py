"""``dama-det plot``: redraw or overlay evaluation figures of one or more runs of
``dama-det eval`` from their saved ``metrics.json`` / ``pr_curves.npz``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DamaUserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot",
        help="redraw / overlay evaluation figures from saved runs",
        description="Redraw the figures of one or more evaluations (dama-det eval) and "
        "overlay their methods: PR curves per IoU threshold, COCO error breakdowns, cell "
        "matching metrics. Each run is its metrics.json (the pr_curves.npz beside it is "
        "read) or a pr_curves.npz.",
    )
    io = p.add_argument_group("input / output")
    io.add_argument("--metrics", required=True, nargs="+", metavar="[RUN=]PATH",
                    help="DIR/metrics.json or DIR/pr_curves.npz of each run; with RUN= the "
                    "methods are named RUN:method")
    io.add_argument("--out", required=True, metavar="DIR", help="folder for the figures")
    io.add_argument("--methods", nargs="+", metavar="NAME",
                    help="only these methods (after RUN: prefixing)")
    io.add_argument("--iou-thresholds", metavar="T,T,...",
                    help="IoU thresholds of the PR figures (default: those of the run)")
    io.add_argument("--format", default="png,pdf", help="file formats (default: %(default)s)")
    p.set_defaults(func=run)


def _curves_path(path: Path) -> Path:
    if path.suffix == ".npz":
        return path
    if path.is_dir():
        return path / "pr_curves.npz"
    return path.with_name("pr_curves.npz")


def run(args: argparse.Namespace) -> int:
    import json

    from ..evaluation.plots import draw_all_figures
    from ..evaluation.report import load_curves
    from ..utils import check_output_dir

    check_output_dir(args.out)
    methods, pr_ious = [], None
    seen: set[str] = set()
    for item in args.metrics:
        run_name, sep, path_text = item.partition("=")
        if not sep:
            run_name, path_text = "", item
        path = Path(path_text)
        if not path.exists():
            raise DamaUserError(f"--metrics {item!r}: {path} does not exist")
        curves, run_ious = load_curves(_curves_path(path))
        if path.suffix == ".json":  # metrics.json holds the cell metrics too
            try:
                metrics = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DamaUserError(
                    f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
            for c in curves:
                c.cell = metrics.get(c.name, {}).get("cell", c.cell)
        pr_ious = pr_ious or run_ious
        for c in curves:
            if run_name:
                c.name = f"{run_name}:{c.name}"
            if c.name in seen:
                raise DamaUserError(f"method {c.name!r} appears twice; name the runs (RUN=PATH)")
            seen.add(c.name)
            methods.append(c)
    if args.methods:
        missing = sorted(set(args.methods) - seen)
        if missing:
            raise DamaUserError(f"--methods: unknown {missing}; available: {sorted(seen)}")
        methods = [m for m in methods if m.name in set(args.methods)]
    if args.iou_thresholds:
        try:
            pr_ious = [float(v) for v in args.iou_thresholds.replace(",", " ").split()]
        except ValueError:
            raise DamaUserError(
                f"--iou-thresholds {args.iou_thresholds!r}: expected numbers") from None
    for m in methods:
        for t in pr_ious:
            try:
                m.curve(next(iter(m.precision)), t)
            except KeyError:
                raise DamaUserError(f"{m.name}: IoU threshold {t} was not evaluated") from None
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise DamaUserError(f"--format: choose among png, pdf, svg (got {args.format!r})")
    written = draw_all_figures(methods, args.out, pr_ious, formats)
    print(f"wrote {len(written)} figure files to {args.out}")
    return 0
