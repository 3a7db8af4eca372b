"""Command-line options of ``dama-det pretrain`` (argparse only: imports nothing heavy).

Groups: data / model / method / optimisation / output / distributed. The defaults
pretrain a tiny ViT with DAMA for a short schedule on the built-in synthetic crops,
on whatever device is available. :class:`PretrainOptions` (and :class:`ExportOptions`
of ``dama-det export``) are the typed options of the stage (:mod:`dama_det.options`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..encoder_export.sizes import MODEL_SIZES, WEIGHT_INITS, sizes_help
from ..errors import DamaUserError
from ..options import StageOptions, stage_options
from .method_registry import method_names, methods_help


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every pretraining option, in groups, to ``parser``.

    ``--method`` offers the methods registered when this is called (see
    :mod:`.method_registry`), so build the parser after registering a method.
    """
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR", default=None,
                      help="folder of N-channel TIFF crops, read recursively (*_masks.tif "
                      "skipped); default: generate synthetic crops into OUTPUT_DIR/synthetic_crops")
    data.add_argument("--synthetic-per-type", type=int, default=20, metavar="N",
                      help="synthetic crops per cell type when --data is omitted")
    data.add_argument("--in-chans", type=int, default=7, help="channels per crop")
    data.add_argument("--img-size", type=int, default=128, help="model input side (pixels)")
    data.add_argument("--scaling", default="dtype_max", choices=("dtype_max", "percentile", "none"),
                      help="intensity scaling (dtype_max: uint8/255, uint16/65535)")
    data.add_argument("--pixel-stats", default="data", choices=("data", "none"),
                      help="data: standardise the input with the per-channel mean/std of the "
                      "scaled crops, as detection does (recorded in the export); none: "
                      "images as scaled (the paper)")
    data.add_argument("--crop-scale", type=float, nargs=2, default=(0.25, 1.0),
                      metavar=("MIN", "MAX"),
                      help="area fraction range of the random crop before resizing")
    data.add_argument("--rotation", type=float, default=90.0, help="max random rotation (degrees)")
    data.add_argument("--shift", type=float, default=0.3,
                      help="max random shift (fraction of side)")
    data.add_argument("--no-flips", dest="flips", action="store_false", help="disable random flips")
    data.add_argument("--num-workers", type=int, default=2,
                      help="data loader processes per GPU/process")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="tiny", choices=tuple(MODEL_SIZES),
                       help=f"ViT size: {sizes_help()}")
    model.add_argument("--patch-size", type=int, default=16)
    model.add_argument("--decoder-embed-dim", type=int, default=None,
                       help="override the decoder width")
    model.add_argument("--decoder-depth", type=int, default=None, help="override the decoder depth")
    model.add_argument("--decoder-num-heads", type=int, default=None,
                       help="override the decoder heads")
    model.add_argument("--weight-init", default="xavier_small_residual", choices=WEIGHT_INITS,
                       help="Linear weight init: xavier_small_residual (default: MAE's, with "
                            "each encoder block's attn.proj and mlp.fc2 at std 0.02, so the "
                            "blocks start near the identity; transfers better, BENCHMARKS.md "
                            "F16), xavier (MAE's code) or trunc_normal (std 0.02 everywhere, "
                            "the init of timm's and detectron2's ViT)")
    model.add_argument("--no-norm-pix-loss", dest="norm_pix_loss", action="store_false",
                       help="reconstruct raw pixels instead of per-patch normalised ones")

    method = parser.add_argument_group("method")
    method.add_argument("--method", default="dama", choices=method_names(), help=methods_help())
    method.add_argument("--mask-ratio", type=float, default=0.8)
    method.add_argument("--overlap-ratio", type=float, default=0.5,
                        help="share of student 1's visible patches also shown to student 2")
    method.add_argument("--regress-blocks", type=int, default=6, metavar="K",
                        help="student 2's last K blocks build the regression target")
    method.add_argument("--beta", type=float, default=2.0, help="Smooth-L1 beta of the regression")
    method.add_argument("--weight-regression", type=float, default=1.0,
                        help="alpha of the regression loss")
    method.add_argument("--weight-recon1", type=float, default=1.0)
    method.add_argument("--weight-recon2", type=float, default=1.0)
    method.add_argument("--stable-epochs", type=int, default=0,
                        help="first epochs with reconstruction losses only")
    method.add_argument("--ema-momentum", type=float, default=0.999,
                        help="teacher momentum (dama-ema)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=5, help="schedule length (paper: 500)")
    opt.add_argument("--stop-after-epoch", type=int, default=None, metavar="E",
                     help="stop after epoch E, keeping the --epochs schedule "
                          "(continue with --resume)")
    opt.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up (paper: 40)")
    opt.add_argument("--batch-size", type=int, default=16,
                     help="per process (GPU); paper: 512 in total (batch x accum-iter x processes)")
    opt.add_argument("--accum-iter", type=int, default=1, help="gradient accumulation steps")
    opt.add_argument("--blr", type=float, default=1.5e-4,
                     help="base lr: lr = blr * effective batch / 256")
    opt.add_argument("--lr", type=float, default=None, help="absolute lr (overrides --blr)")
    opt.add_argument("--min-lr", type=float, default=0.0)
    opt.add_argument("--weight-decay", type=float, default=0.05)
    opt.add_argument("--clip-grad", type=float, default=None, help="max gradient norm")
    opt.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"),
                     help="mixed precision (auto: bf16/fp16 on CUDA, bf16 on CPUs with "
                     "native bf16 (AVX512-BF16 / AMX), else off)")
    opt.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    opt.add_argument("--seed", type=int, default=0)

    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", required=True, metavar="DIR",
                     help="checkpoints, log.jsonl, tensorboard/, figures/, encoder.pth")
    out.add_argument("--untrained", action="store_true",
                     help="write the untrained model's encoder export (the `init` control: "
                     "same architecture and seed, no step taken; with --data and "
                     "--pixel-stats data, the input standardisation the run would record) "
                     "and exit")
    out.add_argument("--resume", default=None, metavar="CKPT",
                     help="checkpoint to continue from, or 'auto' "
                          "(OUTPUT_DIR/checkpoint-last.pth if any)")
    out.add_argument("--overwrite", action="store_true",
                     help="pretrain into an OUTPUT_DIR that holds an earlier run, removing its "
                     "checkpoints, log.jsonl, tensorboard/, figures/ and encoder.pth first "
                     "(without --resume or --overwrite such a folder is refused)")
    out.add_argument("--save-every", type=int, default=5,
                     help="keep checkpoint-EPOCH.pth every N epochs")
    out.add_argument("--vis-every", type=int, default=5,
                     help="reconstruction figure every N epochs (0: never)")
    out.add_argument("--vis-samples", type=int, default=4, help="crops shown in the figure")
    out.add_argument("--log-every", type=int, default=10,
                     help="iterations between TensorBoard points")
    out.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")

    probe = parser.add_argument_group(
        "probes", "frozen-encoder probes of student 1 during pretraining (`dama-det probe`), "
        "logged to log.jsonl and TensorBoard")
    probe.add_argument("--probe-every", type=int, default=0, metavar="E",
                       help="probe after every E epochs and after the last (0: never)")
    probe.add_argument("--probe-task", default="dense", choices=("dense", "celltype"),
                       help="dense: per-patch background/nucleus/boundary on image + "
                       "*_masks.tif pairs; celltype: cell type of crops with labels.csv")
    probe.add_argument("--probe-data", default=None, metavar="DIR",
                       help="the probe task's folder (required with --probe-every)")
    probe.add_argument("--probe-max-images", type=int, default=None, metavar="N",
                       help="probe on a seeded subset of N images / crops")

    dist = parser.add_argument_group(
        "distributed", "multi-GPU: `torchrun --nproc_per_node G -m dama_det pretrain ...`; "
        "SLURM: --slurm --nodes N --ngpus G")
    dist.add_argument("--dist-backend", default="auto", choices=("auto", "nccl", "gloo"),
                      help="auto: nccl on CUDA, gloo on CPU")
    dist.add_argument("--slurm", action="store_true", help="submit to SLURM with submitit and exit")
    dist.add_argument("--nodes", type=int, default=1)
    dist.add_argument("--ngpus", type=int, default=1, help="GPUs (tasks) per node")
    dist.add_argument("--partition", default=None, help="SLURM partition")
    dist.add_argument("--timeout-min", type=int, default=4320, help="SLURM time limit (minutes)")
    dist.add_argument("--mem-gb", type=int, default=64, help="SLURM memory per node")
    dist.add_argument("--cpus-per-task", type=int, default=8)
    dist.add_argument("--slurm-dir", default=None, help="submitit logs (default OUTPUT_DIR/slurm)")
    return parser


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``dama-det export`` options to ``parser``; returns it."""
    io = parser.add_argument_group("input / output")
    io.add_argument("checkpoint", metavar="CHECKPOINT",
                    help="checkpoint-*.pth from dama-det pretrain")
    io.add_argument("--out", required=True, metavar="FILE", help="encoder export to write (.pth)")
    return parser


@stage_options("pretrain", arguments=add_pretrain_arguments)
class PretrainOptions(StageOptions):
    """``dama-det pretrain``: what :func:`~.driver.run_pretraining` and
    :func:`~.slurm.submit_pretraining` take (fields: the flags, defaults: theirs)."""

    # data
    data: str | None
    synthetic_per_type: int
    in_chans: int
    img_size: int
    scaling: str
    pixel_stats: str
    crop_scale: tuple[float, float]
    rotation: float
    shift: float
    flips: bool
    num_workers: int
    # model
    model: str
    patch_size: int
    decoder_embed_dim: int | None
    decoder_depth: int | None
    decoder_num_heads: int | None
    weight_init: str
    norm_pix_loss: bool
    # method
    method: str
    mask_ratio: float
    overlap_ratio: float
    regress_blocks: int
    beta: float
    weight_regression: float
    weight_recon1: float
    weight_recon2: float
    stable_epochs: int
    ema_momentum: float
    # optimisation
    epochs: int
    stop_after_epoch: int | None
    warmup_epochs: float
    batch_size: int
    accum_iter: int
    blr: float
    lr: float | None
    min_lr: float
    weight_decay: float
    clip_grad: float | None
    amp: str
    device: str
    seed: int
    # output
    output_dir: str
    untrained: bool
    resume: str | None
    overwrite: bool
    save_every: int
    vis_every: int
    vis_samples: int
    log_every: int
    progress: bool
    # probes
    probe_every: int
    probe_task: str
    probe_data: str | None
    probe_max_images: int | None
    # distributed
    dist_backend: str
    slurm: bool
    nodes: int
    ngpus: int
    partition: str | None
    timeout_min: int
    mem_gb: int
    cpus_per_task: int
    slurm_dir: str | None

    def check(self) -> None:
        """Checks the parser cannot make (ranges, --probe-every with its folder).

        Raises:
            DamaUserError: the first bad value.
        """
        for name in ("epochs", "batch_size", "accum_iter"):
            if getattr(self, name) < 1:
                raise DamaUserError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup_epochs < 0 or self.num_workers < 0:
            raise DamaUserError("--warmup-epochs and --num-workers must be >= 0")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise DamaUserError(f"--crop-scale needs 0 < MIN <= MAX <= 1, got {lo} {hi}")
        if self.probe_every < 0:
            raise DamaUserError(f"--probe-every must be >= 0, got {self.probe_every}")
        if self.probe_every and not self.probe_data:
            raise DamaUserError("--probe-every needs --probe-data (the probe task's folder)")
        if self.probe_every and not Path(self.probe_data).is_dir():
            raise DamaUserError(f"{self.probe_data}: no such folder (--probe-data)")


@stage_options("export", arguments=add_export_arguments)
class ExportOptions(StageOptions):
    """``dama-det export``: the student-1 encoder of a pretraining checkpoint."""

    checkpoint: str
    out: str


def parse_pretrain_args(argv: list[str]) -> PretrainOptions:
    """Parse pretraining options (for Python use and tests)."""
    parser = argparse.ArgumentParser(prog="dama-det pretrain")
    return PretrainOptions.from_namespace(add_pretrain_arguments(parser).parse_args(argv))
