"""Entry points shared by ``dama-det train`` and ``tools/train_net.py``: the argument
parser, the per-process ``main`` and ``launch_from_args`` (single process, or DDP
over several processes / machines through Detectron2's ``launch``; NCCL on CUDA,
gloo on CPU)."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

from ..errors import DamaUserError
from .options import TrainOptions, add_train_arguments

__all__ = ["EPILOG", "TrainOptions", "add_train_arguments", "build_argument_parser", "cli_main",
           "launch_from_args", "main", "prepare", "run_training"]

logger = logging.getLogger(__name__)

#: Files of ``OUTPUT_DIR`` that show a training run has used it (``--resume`` continues
#: it, ``--overwrite`` replaces it).
RUN_RESULTS = ("model_*.pth", "last_checkpoint", "metrics.json", "events.out.tfevents.*")
#: What ``--overwrite`` removes: the results and the run's log, config and evaluations
#: (the generated ``synth_data/`` is kept).
RUN_OUTPUTS = (*RUN_RESULTS, "log.txt", "config.yaml", "inference")

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


def main(args: TrainOptions) -> OrderedDict | dict | None:
    """Train or evaluate in this process (one DDP worker).

    ``--checkpoint`` (``MODEL.WEIGHTS``) and the checkpoint ``--eval-only`` evaluates are
    loaded as ``dama-det predict`` loads its ``--weights``: one that does not fit the
    model is an error, not a silent random initialisation. A finished run always leaves
    a complete ``model_final.pth``.

    Returns:
        The evaluation results of the last evaluation (or of ``--eval-only``).
    """
    from detectron2.evaluation import verify_results
    from detectron2.utils import comm

    from ..utils import is_complete_file
    from .checkpoint import DamaCheckpointer, load_checkpoint_strict
    from .setup import setup
    from .trainer import DamaTrainer

    cfg = setup(args)
    if args.eval_only:
        model = DamaTrainer.build_model(cfg)
        checkpointer = DamaCheckpointer(model, save_dir=cfg.OUTPUT_DIR)
        if cfg.MODEL.WEIGHTS:
            load_checkpoint_strict(model, cfg.MODEL.WEIGHTS, flag="--checkpoint")
        elif checkpointer.has_checkpoint():
            load_checkpoint_strict(model, checkpointer.get_checkpoint_file(),
                                   flag="--checkpoint")
        else:
            raise DamaUserError(
                f"--eval-only: no trained weights (pass --checkpoint, or train into "
                f"{cfg.OUTPUT_DIR} first)"
            )
        results = DamaTrainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        _leave_process_group()
        return results
    trainer = DamaTrainer(cfg)
    resume = args.resume and trainer.checkpointer.has_checkpoint()
    if resume:
        last = trainer.checkpointer.get_checkpoint_file()
        if not is_complete_file(last):
            raise DamaUserError(
                f"{last}: cannot resume from an empty or truncated checkpoint; delete it and "
                "last_checkpoint to resume from an earlier one, or start again with --overwrite"
            )
        trainer.resume_or_load(resume=True)
    elif cfg.MODEL.WEIGHTS:
        load_checkpoint_strict(trainer.checkpointer.model, cfg.MODEL.WEIGHTS, flag="--checkpoint")
    results = trainer.train() or getattr(trainer, "_last_eval_results", None)
    _ensure_final_checkpoint(trainer)
    _leave_process_group()
    return results


def _leave_process_group() -> None:
    """After a finished run of several workers: wait for all, then leave the process group.

    Detectron2's ``launch`` returns from a worker without destroying its group; a worker
    that exits while another still writes its final checkpoint can then abort in the
    group's C++ teardown ("terminate called without an active exception", seen once in
    the two-process CPU test), which fails the whole run.
    """
    import torch.distributed as dist
    from detectron2.utils import comm

    if dist.is_available() and dist.is_initialized() and comm.get_world_size() > 1:
        comm.synchronize()
        dist.destroy_process_group()


def _ensure_final_checkpoint(trainer) -> None:
    """Write ``model_final.pth`` after a finished run when it is missing or incomplete
    (a run resumed at its end trains no step, so no hook writes it)."""
    from detectron2.utils import comm

    from ..utils import is_complete_file

    final = Path(trainer.cfg.OUTPUT_DIR) / "model_final.pth"
    if comm.is_main_process() and trainer.iter >= trainer.max_iter \
            and not is_complete_file(final):
        trainer.checkpointer.save("model_final", iteration=trainer.max_iter - 1)


def prepare(args: TrainOptions, cfg=None):
    """Work done once before workers start: check the config, the output directory (an
    earlier run in it needs ``--resume`` or ``--overwrite``) and the datasets' images,
    and generate the synthetic data set if the config needs it and it is absent.

    Args:
        args: parsed arguments.
        cfg: their config (:func:`~dama_det.engine.setup.build_cfg`), built if None.

    Returns:
        The config.
    """
    from ..utils import claim_output_dir, glob_outputs
    from .datasets import check_dataset_images, ensure_synthetic_data, register_datasets_from_cfg
    from .setup import build_cfg

    if cfg is None:
        cfg = build_cfg(args)
    if args.machine_rank == 0 and not args.eval_only:
        out = cfg.OUTPUT_DIR
        flag = "--output-dir" if getattr(args, "output_dir", None) else "OUTPUT_DIR"
        claim_output_dir(out, glob_outputs(out, RUN_RESULTS), flag=flag, resume=args.resume,
                         overwrite=getattr(args, "overwrite", False),
                         remove=glob_outputs(out, RUN_OUTPUTS))
        ensure_synthetic_data(cfg)
        register_datasets_from_cfg(cfg)
        check_dataset_images(cfg)
    return cfg


def _remove_unstarted_run(out_dir: str) -> None:
    """Remove ``out_dir``, created by a run that failed before writing any checkpoint,
    so that a user error leaves nothing behind."""
    from ..utils import glob_outputs

    if not glob_outputs(out_dir, ("model_*.pth",)):
        shutil.rmtree(out_dir, ignore_errors=True)


def launch_from_args(args: TrainOptions | argparse.Namespace):
    """:func:`run_training` of parsed arguments (``tools/train_net.py``, tests)."""
    return run_training(TrainOptions.of(args))


def run_training(args: TrainOptions):
    """Run ``main`` in this process or in ``num_gpus x num_machines`` DDP workers: the
    entry function of ``dama-det train``.

    When the output directory did not exist and the run stops on a user error before
    its first checkpoint, the directory is removed again.

    Raises:
        DamaUserError: a bad option or config, or an output directory with an earlier
            run and neither ``resume`` nor ``overwrite``.
    """
    from detectron2.engine import launch

    from .setup import build_cfg

    args.validate()
    cfg = build_cfg(args)
    fresh = bool(cfg.OUTPUT_DIR) and not os.path.exists(cfg.OUTPUT_DIR)
    try:
        prepare(args, cfg)
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
        launch(main, args.num_gpus, num_machines=args.num_machines,
               machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
        return None
    except DamaUserError:
        if fresh:
            _remove_unstarted_run(cfg.OUTPUT_DIR)
        raise


def cli_main(argv: list[str] | None = None) -> int:
    """``tools/train_net.py``: parse, run, map user errors to exit status 2."""
    parser = build_argument_parser(prog=os.path.basename(sys.argv[0]) if argv is None else None)
    args = TrainOptions.from_namespace(parser.parse_args(argv))
    try:
        run_training(args)
    except DamaUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
