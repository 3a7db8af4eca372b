"""``dama-det pretrain``: DAMA / MAE self-supervised pretraining of an N-channel ViT."""
from __future__ import annotations

import argparse

from ..pretrain.options import PretrainOptions, add_pretrain_arguments
from ._args import HelpFormatter

DESCRIPTION = """\
Self-supervised pretraining of a ViT encoder on N-channel TIFF crops with DAMA
(two students, adaptive masking, reconstruction + feature regression) or MAE.
Writes OUTPUT_DIR/checkpoint-{last,best,EPOCH}.pth, log.jsonl, tensorboard/,
figures/epoch_*.png and, at the end, encoder.pth (the student-1 encoder export that
`dama-det train` and `dama-det classify` load). An OUTPUT_DIR that holds an earlier
run needs --resume (continue it) or --overwrite (replace it).

Without --data, synthetic 7-channel crops are generated into
OUTPUT_DIR/synthetic_crops, so `dama-det pretrain --output-dir DIR` alone pretrains a
tiny model for a short schedule. Several GPUs:
`torchrun --nproc_per_node G -m dama_det pretrain ...`; SLURM: add --slurm.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` subcommand."""
    parser = subparsers.add_parser(
        "pretrain", help="DAMA / MAE self-supervised pretraining of a ViT encoder",
        description=DESCRIPTION, formatter_class=HelpFormatter,
    )
    add_pretrain_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run (or submit) the pretraining; returns the exit status."""
    opts = PretrainOptions.from_namespace(args)
    if opts.slurm:
        from ..pretrain.slurm import submit_pretraining

        job = submit_pretraining(opts)
        logs = opts.slurm_dir or opts.output_dir + "/slurm"
        print(f"submitted SLURM job {job.job_id}; logs in {logs}")
        return 0
    from ..pretrain.driver import run_pretraining

    run_pretraining(opts)
    return 0
