"""``dama-det probe``: frozen-encoder probes - did pretraining learn something?

The encoder (an export from ``dama-det export``, or with ``--random`` an untrained
encoder of the same kind, the control) stays frozen; simple probes are fitted on its
features. ``celltype``: cosine k-NN (k=20, temperature-weighted votes) and a linear
probe (class-balanced logistic regression, L-BFGS) on the crop feature (the mean of
the patch tokens at the crop's centre, where a cell-centred crop has its cell; all
patch tokens with ``--pool mean``) of labelled crops (``labels.csv``: file, cell_type,
as ``dama-det data synth`` writes in ``crops/``), stratified folds. ``dense``: a linear
probe of each patch token's class (background / interior: >= half nucleus pixels /
boundary: some nucleus pixels) on tiles of cellpose-style image + ``_masks`` pairs,
split by image. Reports accuracy, balanced accuracy and per-class recall; minutes on a
CPU.
"""
from __future__ import annotations

import argparse

from ..probe.options import ProbeOptions, add_probe_arguments
from ._args import HelpFormatter

EXAMPLE = """examples:
  dama-det probe --weights runs/dama/encoder.pth --task celltype --data data/synth/crops
  dama-det probe --random --model mini --task dense --data ../shared/data/dsb2018/train \\
      --max-images 100 --out probe_random.json
  dama-det probe --weights enc.pth --with-random --task dense --data DIR   # + the control
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``probe`` subcommand."""
    p = subparsers.add_parser(
        "probe",
        help="k-NN / linear probes of a frozen encoder (celltype crops, dense patches)",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        epilog=EXAMPLE,
        formatter_class=HelpFormatter,
    )
    add_probe_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det probe``; returns the exit status."""
    from ..probe.run import run_probe

    run_probe(ProbeOptions.from_namespace(args))
    return 0
