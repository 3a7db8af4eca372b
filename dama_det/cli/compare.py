"""``dama-det compare``: several pretraining methods, one Mask R-CNN schedule, one table."""
from __future__ import annotations

import argparse

from ._args import DefaultsHelpFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare pretraining methods (random, mae, dama, ...) on Mask R-CNN AP",
        description="Run the paper's experiment from a YAML run description (methods, "
        "dataset, budgets, seeds; optional label fractions and probes): pretrain each "
        "method, probe its frozen encoder, train the same Mask R-CNN schedule, evaluate all "
        "together; writes results.md/csv/json (box/mask AP, AP50, AP75, mean and std over "
        "seeds, paired gains over random init and the untrained export 'init', probe "
        "accuracy), PR-per-IoU and error-breakdown figures with all methods overlaid, and "
        "report.md. A stopped comparison continues where it stopped; a method added to the "
        "description later runs alone; a description changed otherwise is refused there "
        "(settings.json names the changed keys). The YAML keys are documented in "
        "dama_det/pipeline/run_spec.py; shipped descriptions: configs/compare/*.yaml.",
        formatter_class=DefaultsHelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument("description", metavar="RUN.yaml", help="run description (YAML)")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: outputs/compare_<name>)")
    g.add_argument("--force", action="store_true",
                   help="re-run stages whose outputs exist (and so allow a changed "
                        "description in an --out that holds the old one's outputs)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.compare import run_comparison

    path = run_comparison(args.description, args.out, force=args.force, device=args.device)
    print(path.read_text())
    print(f"wrote {path} and {path.parent / 'report.md'}")
    return 0
