"""``dama-det demo``: synthetic data -> DAMA pretraining -> Mask R-CNN -> evaluation -> report."""
from __future__ import annotations

import argparse

from ._args import DefaultsHelpFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the main job end to end on built-in synthetic data, with a report",
        description="Generate synthetic 7-channel tissue, pretrain DAMA, export the encoder, "
        "train Mask R-CNN from it, predict and evaluate the validation tiles, and write "
        "OUT/report.md (AP table, PR curves per IoU, error breakdown, overlays). Stages whose "
        "outputs exist are skipped (so a stopped demo continues); --force re-runs them. "
        "Another --preset or --seed in a folder holding a demo is refused (settings.json).",
        formatter_class=DefaultsHelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument("--out", default="outputs/demo", metavar="DIR", help="output folder")
    g.add_argument("--preset", default="cpu", choices=("cpu", "cpu-long", "smoke", "gpu"),
                   help="sizes: cpu (~5 min on 2 cores), cpu-long (~10 min, 2x the detector "
                        "iterations), smoke (seconds, tests), gpu (ViT-tiny)")
    g.add_argument("--seed", type=int, default=0, help="seed of every stage")
    g.add_argument("--force", action="store_true",
                   help="re-run stages whose outputs exist (and so allow another preset or seed)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--controls", action="store_true",
                   help="also train the same detector from random init and from the untrained "
                   "export ('init') and report them beside the pretrained one (3x the "
                   "detector time)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.demo import run_demo

    run_demo(args.out, preset=args.preset, seed=args.seed, force=args.force, device=args.device,
             controls=args.controls)
    return 0
