"""``dama-det train``: train or evaluate Mask R-CNN with the DAMA ViT backbone."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    from ..engine.launch import EPILOG
    from ..engine.options import add_train_arguments

    parser = subparsers.add_parser(
        "train",
        help="train / evaluate the Mask R-CNN cell detector (Detectron2)",
        description="Train Mask R-CNN with the DAMA ViT backbone on N-channel cell images,\n"
        "or evaluate a trained model (--eval-only). Without dataset flags it trains on\n"
        "synthetic 7-channel data, generated into OUTPUT_DIR/synth_data when absent.\n"
        "Checkpoints (model_final.pth, model_best.pth by segm AP; written atomically),\n"
        "metrics.json and TensorBoard events go to the output directory; one that holds an\n"
        "earlier run needs --resume (continue it) or --overwrite (replace it).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run training / evaluation; returns the exit status."""
    from ..engine.launch import run_training
    from ..engine.options import TrainOptions

    run_training(TrainOptions.from_namespace(args))
    return 0
