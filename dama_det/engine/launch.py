"""Entry points shared by ``dama-det train`` and ``tools/train_net.py``: the argument
parser, the per-process ``main`` and ``launch_from_args`` (single process, or DDP
over several processes / machines through Detectron2's ``launch``; NCCL on CUDA,
gloo on CPU)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import OrderedDict

from ..errors import DamaUserError

logger = logging.getLogger(__name__)

EPILOG = """examples:
  quick smoke test (tiny ViT, synthetic data, ~1 min on CPU):
    dama-det train --config-file quick_schedules/mask_rcnn_dama_vit_instant_test.yaml
  ViT-B on synthetic 7-channel data with a pretrained DAMA encoder:
    dama-det train --config-file mask_rcnn_dama_vit_b_50ep_synth7.yaml --weights dama_vit_b.pth
  ViT-tiny on DSB2018 (COCO jsons from `dama-det data to-coco`), 4 GPUs:
    dama-det train --config-file mask_rcnn_dama_vit_tiny_50ep_dsb2018.yaml \\
        --train-json dsb/train.json --val-json dsb/val.json --num-gpus 4
  evaluate the last checkpoint of a run:
    dama-det train --config-file CONFIG --output-dir RUN --eval-only
  override config keys at the end:  ... SOLVER.BASE_LR 2e-4 SOLVER.IMS_PER_BATCH 8
"""


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


def build_argument_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """A stand-alone parser with the training flags (``tools/train_net.py``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train / evaluate Mask R-CNN with the DAMA ViT backbone on N-channel cell "
        "images (Detectron2).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_train_arguments(parser)


def main(args: argparse.Namespace) -> OrderedDict | dict | None:
    """Train or evaluate in this process (one DDP worker).

    Returns:
        The evaluation results of the last evaluation (or of ``--eval-only``).
    """
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.evaluation import verify_results
    from detectron2.utils import comm

    from .setup import setup
    from .trainer import DamaTrainer

    cfg = setup(args)
    if args.eval_only:
        model = DamaTrainer.build_model(cfg)
        checkpointer = DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR)
        if cfg.MODEL.WEIGHTS:
            checkpointer.load(cfg.MODEL.WEIGHTS)
        elif checkpointer.has_checkpoint():
            checkpointer.load(checkpointer.get_checkpoint_file())
        else:
            raise DamaUserError(
                f"--eval-only: no trained weights (pass --checkpoint, or train into "
                f"{cfg.OUTPUT_DIR} first)"
            )
        results = DamaTrainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = DamaTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train() or getattr(trainer, "_last_eval_results", None)


def prepare(args: argparse.Namespace) -> None:
    """Work done once before workers start: check the config and generate the
    synthetic data set if the config needs it and it is absent."""
    from .datasets import ensure_synthetic_data
    from .setup import build_cfg

    cfg = build_cfg(args)
    if args.machine_rank == 0 and not args.eval_only:
        ensure_synthetic_data(cfg)


def launch_from_args(args: argparse.Namespace):
    """Run ``main`` in this process or in ``num_gpus x num_machines`` DDP workers."""
    from detectron2.engine import launch

    if args.num_gpus < 1 or args.num_machines < 1:
        raise DamaUserError("--num-gpus and --num-machines must be >= 1")
    prepare(args)
    world = args.num_gpus * args.num_machines
    if world == 1:
        return main(args)
    import torch

    if torch.cuda.is_available() and args.num_gpus > torch.cuda.device_count():
        raise DamaUserError(
            f"--num-gpus {args.num_gpus} but only {torch.cuda.device_count()} GPU(s) visible"
        )
    if args.dist_url == "auto" and args.num_machines > 1:
        raise DamaUserError("--dist-url auto works on one machine; give tcp://HOST:PORT")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
    return None


def cli_main(argv: list[str] | None = None) -> int:
    """``tools/train_net.py``: parse, run, map user errors to exit status 2."""
    parser = build_argument_parser(prog=os.path.basename(sys.argv[0]) if argv is None else None)
    args = parser.parse_args(argv)
    try:
        launch_from_args(args)
    except DamaUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
