"""``dama-det probe``: frozen-encoder probes - did pretraining learn something?

The encoder (an export from ``dama-det export``, or with ``--random`` an untrained
encoder of the same kind, the control) stays frozen; simple probes are fitted on its
features. ``celltype``: cosine k-NN (k=20, temperature-weighted votes) and a linear
probe (class-balanced logistic regression, L-BFGS) on mean-pooled features of
labelled crops (``labels.csv``: file, cell_type, as ``dama-det data synth`` writes in
``crops/``), stratified folds. ``dense``: a linear probe of each patch token's class
(background / interior: >= half nucleus pixels / boundary: some nucleus pixels) on
tiles of cellpose-style image + ``_masks`` pairs, split by image. Reports accuracy,
balanced accuracy and per-class recall; minutes on a CPU.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..encoder_export.sizes import MODEL_SIZES
from ._args import HelpFormatter, fraction, positive_int

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
    g = p.add_argument_group("encoder")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="ENCODER.pth",
                     help="encoder export written by `dama-det export` (or pretraining)")
    src.add_argument("--random", action="store_true",
                     help="an untrained encoder (MAE init: xavier, sin-cos positions) of "
                     "--model size: the control (what `dama-det compare` calls `init`)")
    g.add_argument("--model", default="mini", choices=tuple(MODEL_SIZES),
                   help="size of the --random encoder")
    g.add_argument("--patch-size", type=positive_int, default=16,
                   help="patch size of the --random encoder")
    g.add_argument("--with-random", action="store_true",
                   help="with --weights: also probe its untrained counterpart (same "
                   "architecture, --seed) on the same split and report the differences")

    g = p.add_argument_group("task")
    g.add_argument("--task", required=True, choices=("celltype", "dense"),
                   help="celltype: crop-level cell type; dense: per-patch "
                   "background/interior/boundary")
    g.add_argument("--data", required=True, type=Path, metavar="DIR",
                   help="celltype: crops folder with labels.csv (or one sub-folder per "
                   "class); dense: folder of <name>.tif + <name>_masks.tif pairs")
    g.add_argument("--img-size", type=positive_int, default=None, metavar="PX",
                   help="encoder input side: crops are resized to it, images cut into "
                   "tiles of it; None: the export's, 128 for --random")
    g.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                   help="use a seeded subset of N crops (class-balanced) / images")
    g.add_argument("--intensity-scaling", choices=("dtype_max", "percentile", "none"),
                   default="dtype_max",
                   help="dtype_max: divide by the pixel type's maximum (as pretraining)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the split, the subset and the random weights")

    g = p.add_argument_group("probes")
    g.add_argument("--folds", type=int, default=2, metavar="K",
                   help="celltype: stratified folds, each the test split once (2 = 50/50)")
    g.add_argument("--test-fraction", type=fraction, default=0.5, metavar="F",
                   help="dense: fraction of the images tested on")
    g.add_argument("--knn-k", type=positive_int, default=20, metavar="K",
                   help="celltype: neighbours of the k-NN probe")
    g.add_argument("--knn-weighting", choices=("temperature", "majority"),
                   default="temperature",
                   help="k-NN votes: exp(cosine / 0.07) per neighbour, or one each")
    g.add_argument("--weight-decay", type=float, default=1e-3, metavar="WD",
                   help="L2 penalty of the linear probe (standardised features)")
    g.add_argument("--max-iter", type=positive_int, default=100, metavar="N",
                   help="L-BFGS iterations of the linear probe")
    g.add_argument("--interior-min", type=fraction, default=0.5, metavar="F",
                   help="dense: nucleus fraction from which a patch is 'interior'")

    g = p.add_argument_group("hardware")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--amp", default="off", choices=("auto", "bf16", "fp16", "off"),
                   help="autocast of the encoder (auto: bf16/fp16 on CUDA, off on CPU)")
    g.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                   help="images per forward pass")

    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, metavar="metrics.json",
                   help="write the full result as JSON (atomically)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det probe``; returns the exit status."""
    from ..errors import DamaUserError
    from ..probe.run import run_probes, summary_lines
    from ..utils import atomic_write_json, check_output_file

    if args.with_random and args.random:
        raise DamaUserError("--with-random needs --weights (--random is already the control)")
    if not args.data.exists():
        raise DamaUserError(f"{args.data}: no such data folder")
    if args.out is not None:
        check_output_file(args.out)
    result = run_probes(
        None if args.random else args.weights, args.task, args.data,
        img_size=args.img_size, max_images=args.max_images, seed=args.seed,
        model_size=args.model, patch_size=args.patch_size, with_random=args.with_random,
        device=args.device, amp=args.amp, batch_size=args.batch_size, folds=args.folds,
        test_fraction=args.test_fraction, knn_k=args.knn_k, knn_weighting=args.knn_weighting,
        weight_decay=args.weight_decay, max_iter=args.max_iter,
        interior_min=args.interior_min, scaling=args.intensity_scaling,
        progress=not args.quiet,
    )
    for line in summary_lines(result):
        print(line)
    if args.out is not None:
        atomic_write_json(args.out, result)
        print(f"-> {args.out}")
    return 0
