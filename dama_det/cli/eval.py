"""``dama-det eval``: COCO box/mask AP/AR, PR curves, error breakdown and cell matching
metrics of one or more methods against a ground truth, with figures."""
from __future__ import annotations

import argparse

from ..evaluation.options import EvalOptions, add_eval_arguments, max_dets_list, parse_named_sources

__all__ = ["max_dets_list", "parse_named_sources", "register", "run"]


def register(subparsers) -> None:
    """Add the ``eval`` subcommand."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate COCO results (or label-image folders) against a ground truth",
        description="COCO box and mask AP/AR (same numbers as pycocotools), precision-"
        "recall curves per IoU threshold, the COCO error breakdown and cellpose/stardist "
        "matching metrics for one or more methods. Writes OUT/metrics.json, "
        "OUT/report.json, OUT/pr_curves.npz, OUT/summary.md and OUT/figures/.",
    )
    add_eval_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det eval``; returns the exit status."""
    from ..evaluation.eval_command import run_eval

    run_eval(EvalOptions.from_namespace(args))
    return 0
