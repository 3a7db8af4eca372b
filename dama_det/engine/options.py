"""Options of ``dama-det train`` (and ``tools/train_net.py``): the argparse flags and
:class:`TrainOptions`, the typed options :func:`~.launch.run_training` takes
(:mod:`dama_det.options`). Imports nothing heavy.
"""
from __future__ import annotations

import argparse

from ..errors import DamaUserError
from ..options import StageOptions, stage_options


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the training flags (grouped) to ``parser``; returns it."""
    from .config_files import DEFAULT_CONFIG

    g = parser.add_argument_group("config")
    g.add_argument("--config-file", "--config", dest="config_file", default=DEFAULT_CONFIG,
                   metavar="FILE", help="YAML config: a path or a name under configs/ "
                   f"(default: {DEFAULT_CONFIG})")
    g.add_argument("--output-dir", metavar="DIR", default=None,
                   help="where checkpoints, logs, metrics.json and TensorBoard events go "
                   "(default: the config's OUTPUT_DIR)")
    g.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                   help="config overrides, e.g. SOLVER.BASE_LR 2e-4 SOLVER.MAX_ITER 1000")

    g = parser.add_argument_group("data")
    g.add_argument("--train-json", metavar="JSON", default=None,
                   help="COCO json of the training images (default: the config's datasets; "
                   "synthetic data is generated into OUTPUT_DIR/synth_data if needed)")
    g.add_argument("--val-json", metavar="JSON", default=None,
                   help="COCO json of the validation images")

    g = parser.add_argument_group("weights")
    g.add_argument("--weights", metavar="EXPORT", default=None,
                   help="pretrained encoder export (`dama-det export`) loaded into the ViT "
                   "(MODEL.DAMA_VIT.ENCODER_WEIGHTS)")
    g.add_argument("--checkpoint", metavar="PTH", default=None,
                   help="full detector checkpoint to start from or evaluate (MODEL.WEIGHTS)")
    g.add_argument("--resume", action="store_true",
                   help="resume from the last checkpoint in the output directory")
    g.add_argument("--overwrite", action="store_true",
                   help="train into an output directory that holds an earlier run, removing "
                   "its checkpoints, metrics, events and logs first (without --resume or "
                   "--overwrite such a directory is refused)")
    g.add_argument("--eval-only", action="store_true",
                   help="only evaluate (--checkpoint, or the output directory's last checkpoint)")

    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default=None, metavar="DEV",
                   help="auto, cpu, cuda, cuda:1 (default: the config's MODEL.DEVICE, auto)")
    g.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                   help="mixed precision: auto = the config's (AMP on CUDA, fp32 on CPU); "
                   "bf16 also enables bf16 autocast on CPU")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: config SEED)")
    g.add_argument("--num-gpus", type=int, default=1, metavar="N",
                   help="processes per machine (GPUs; on CPU: gloo processes)")
    g.add_argument("--num-machines", type=int, default=1, metavar="N", help="machines")
    g.add_argument("--machine-rank", type=int, default=0, metavar="R",
                   help="rank of this machine")
    g.add_argument("--dist-url", default="auto", metavar="URL",
                   help="DDP rendezvous URL (tcp://host:port; auto = a free local port)")
    return parser


@stage_options("train", arguments=add_train_arguments)
class TrainOptions(StageOptions):
    """``dama-det train``: Mask R-CNN training / evaluation (fields: the flags; ``opts``:
    Detectron2 ``KEY VALUE`` config overrides, applied last)."""

    config_file: str
    output_dir: str | None
    opts: list[str]
    train_json: str | None
    val_json: str | None
    weights: str | None
    checkpoint: str | None
    resume: bool
    overwrite: bool
    eval_only: bool
    device: str | None
    amp: str
    seed: int | None
    num_gpus: int
    num_machines: int
    machine_rank: int
    dist_url: str

    def check(self) -> None:
        """Raises DamaUserError for fewer than one process or machine."""
        if self.num_gpus < 1 or self.num_machines < 1:
            raise DamaUserError("--num-gpus and --num-machines must be >= 1")
