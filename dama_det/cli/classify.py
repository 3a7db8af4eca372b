"""``dama-det classify``: k-fold cell-type classification, one table row per method."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..encoder_export.sizes import CLASSIFIER_POOLS, CLASSIFIER_SIZES, RANDOM_POS_EMBEDS, model_size
from ._args import HelpFormatter, fraction, positive_int

EXAMPLE = """example:
  dama-det classify --data crops/ --method random --method dama=out/dama.pth \\
      --folds 10 --epochs 150 --out results/classify
  (without --data, synthetic labelled crops are generated into OUT/synthetic_crops)
multi-GPU: torchrun --nproc_per_node 4 -m dama_det classify ...
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classify`` subcommand."""
    p = subparsers.add_parser(
        "classify",
        help="k-fold classification of cell crops, comparing pretrained encoders",
        description="Fine-tune a ViT classifier (the mean of the patch tokens over the "
        "crop's centre, or of all of them with --pool mean, + fc_norm) on "
        "labelled N-channel crops with stratified k-fold cross-validation, once per "
        "method: 'random' (random init) and NAME=EXPORT.pth (an encoder export from "
        "`dama-det export`). Writes the paper's table (table.md, table.csv: one row per "
        "method, fold accuracies, Avg. with the difference to random init, Err.), a "
        "confusion matrix per method and results.json. Finished folds are kept in "
        "OUT/fold_results.json and skipped when the command is run again.",
        epilog=EXAMPLE,
        formatter_class=HelpFormatter,
    )
    io = p.add_argument_group("input / output")
    io.add_argument("--data", type=Path, metavar="DIR",
                    help="folder with one sub-folder of TIFF crops per class (class = "
                    "sub-folder name); default: synthetic crops generated into OUT")
    io.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    io.add_argument("--synth-per-class", type=positive_int, default=100, metavar="N",
                    help="synthetic crops per cell type (without --data)")
    io.add_argument("--synth-crop-size", type=positive_int, default=128, metavar="PX",
                    help="synthetic crop size (without --data)")
    io.add_argument("--intensity-scaling", choices=("dtype_max", "percentile", "none"),
                    default="dtype_max",
                    help="dtype_max: divide by the pixel type's maximum (the paper); "
                    "percentile: per-channel percentile normalisation")
    io.add_argument("--percentile-range", type=float, nargs=2, default=(1.0, 99.8),
                    metavar=("LOW", "HIGH"), help="percentiles mapped to 0 and 1")
    io.add_argument("--pixel-stats", choices=("data", "none"), default="data",
                    help="data: standardise each channel with the training fold's mean and "
                    "std after scaling (as detection and pretraining do); none: the paper's "
                    "plain scaling")
    io.add_argument("--save-models", action="store_true",
                    help="also save each fine-tuned classifier (OUT/models/METHOD/foldI.pth)")
    io.add_argument("--quiet", action="store_true", help="print only the final table")

    meth = p.add_argument_group("methods")
    meth.add_argument("--method", action="append", dest="methods", metavar="NAME[=EXPORT]",
                      help="'random' or NAME=EXPORT.pth; repeat for several (default: random)")
    meth.add_argument("--no-random", action="store_true",
                      help="do not add the 'random' baseline automatically (no Avg. delta)")

    cv = p.add_argument_group("cross-validation")
    cv.add_argument("--folds", type=int, default=10, metavar="K", help="number of folds")
    cv.add_argument("--folds-file", type=Path, metavar="JSON",
                    help="fold split to create or reuse (default OUT/folds.json)")
    cv.add_argument("--label-fraction", type=fraction, default=1.0, metavar="F",
                    help="fine-tune on this share of each training fold, stratified by "
                    "class (at least one crop per class; the subset is fixed by --seed and "
                    "the fold, so every method trains on the same crops); the test fold "
                    "stays whole: few-label runs, or larger test folds at a fixed training "
                    "size (BENCHMARKS.md E57, E58)")
    cv.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    cv.add_argument("--restart", action="store_true",
                    help="discard finished folds stored in OUT/fold_results.json")

    model = p.add_argument_group("model (random init; exports bring their own architecture)")
    model.add_argument("--arch", choices=CLASSIFIER_SIZES, default=None,
                       help="ViT size for 'random' (default: the first export's, else tiny)")
    model.add_argument("--random-pos-embed", choices=RANDOM_POS_EMBEDS, default="sincos",
                       help="how random init's position table starts: the fixed 2-D sin-cos "
                       "table exports carry, learned from there (+25 points over trunc_normal "
                       "on synthetic cell crops, BENCHMARKS.md E43), or trunc_normal "
                       "(timm's draw: the paper's random-init baseline)")
    model.add_argument("--pool", choices=CLASSIFIER_POOLS, default="centre",
                       help="what the head reads: the mean of the 2 x 2 patch tokens over the "
                       "crop's centre, where a cell-centred crop has the cell its label names "
                       "(+26 points for random init, +17 for an export on synthetic nuclear "
                       "crops, every fold, BENCHMARKS.md E51), or of all patch tokens (MAE's "
                       "global average pooling, the paper's; use it for crops that are not "
                       "cell-centred)")
    model.add_argument("--embed-dim", type=positive_int, help="override the width")
    model.add_argument("--depth", type=positive_int, help="override the number of blocks")
    model.add_argument("--num-heads", type=positive_int, help="override the number of heads")
    model.add_argument("--patch-size", type=positive_int, default=16, help="patch size")
    model.add_argument("--img-size", type=positive_int,
                       help="input size (default: the crops' size, else the export's)")
    model.add_argument("--drop-path", type=fraction, default=0.1, help="stochastic depth rate")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=150, help="fine-tuning epochs")
    opt.add_argument("--warmup-epochs", type=float, default=5.0, help="linear warm-up epochs")
    opt.add_argument("--batch-size", type=positive_int, default=128, help="batch size per process")
    opt.add_argument("--blr", type=float, default=1e-2,
                     help="base lr; lr = blr * total batch / 256 (the paper's table; 10x "
                     "E8's 1e-3 gave +9 points on held-out crops, BENCHMARKS.md E42)")
    opt.add_argument("--lr", type=float, help="absolute lr (overrides --blr)")
    opt.add_argument("--min-lr", type=float, default=1e-5, help="final lr of the cosine decay")
    opt.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay")
    opt.add_argument("--layer-decay", type=float, default=0.65, help="layer-wise lr decay")
    opt.add_argument("--clip-grad", type=float, help="gradient norm clipping (off by default)")

    aug = p.add_argument_group("augmentation and regularisation")
    aug.add_argument("--mixup", type=float, default=0.8, help="mixup alpha (0 = off)")
    aug.add_argument("--cutmix", type=float, default=1.0, help="cutmix alpha (0 = off)")
    aug.add_argument("--mixup-prob", type=fraction, default=1.0,
                     help="probability of mixing a batch")
    aug.add_argument("--mixup-switch-prob", type=fraction, default=0.5,
                     help="probability of cutmix instead of mixup when both are on")
    aug.add_argument("--smoothing", type=fraction, default=0.1, help="label smoothing")
    aug.add_argument("--reprob", type=fraction, default=0.25, help="random erasing probability")
    aug.add_argument("--remode", choices=("const", "rand", "pixel"), default="const",
                     help="random erasing fill (const = 0, the unnormalised background)")
    aug.add_argument("--recount", type=positive_int, default=1, help="random erasing count")
    aug.add_argument("--crop-scale", type=float, nargs=2, default=(1.0, 1.0),
                     metavar=("MIN", "MAX"),
                     help="RandomResizedCrop area range; 1 1 keeps the whole crop, so a "
                     "cell-centred crop keeps its cell (the paper's 0.08 1 often cuts it "
                     "away: -1.8 points on held-out crops; with blr 1e-2 the two defaults "
                     "gave +29 points over E8's recipe, BENCHMARKS.md E42)")
    aug.add_argument("--hflip", type=fraction, default=0.5, help="horizontal flip probability")
    aug.add_argument("--vflip", type=fraction, default=0.5, help="vertical flip probability")

    rt = p.add_argument_group("hardware")
    rt.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    rt.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                    help="mixed precision (auto: bf16/fp16 on CUDA, bf16 on CPUs with "
                         "native bf16, else off)")
    rt.add_argument("--workers", type=int, default=2, help="data loader worker processes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``dama-det classify``; returns the exit status."""
    from ..classification import ClassifyOptions, FinetuneConfig, ViTArch, parse_method
    from ..errors import DamaUserError
    from ..utils import check_output_dir

    check_output_dir(args.out)
    if args.crop_scale[0] <= 0 or args.crop_scale[0] > args.crop_scale[1] or args.crop_scale[1] > 1:
        raise DamaUserError(f"--crop-scale needs 0 < MIN <= MAX <= 1, got {args.crop_scale}")
    low, high = args.percentile_range
    if not 0 <= low < high <= 100:
        raise DamaUserError(f"--percentile-range needs 0 <= LOW < HIGH <= 100, got {low} {high}")
    if args.workers < 0:
        raise DamaUserError(f"--workers must be >= 0, got {args.workers}")
    methods = [parse_method(m) for m in (args.methods or ["random"])]
    if not args.no_random and all(m.name != "random" for m in methods):
        methods.insert(0, parse_method("random"))
    arch = None
    overrides = {"embed_dim": args.embed_dim, "depth": args.depth, "num_heads": args.num_heads}
    if args.arch or any(v is not None for v in overrides.values()) or args.patch_size != 16:
        base = model_size(args.arch or "tiny").encoder()
        base.update({k: v for k, v in overrides.items() if v is not None})
        arch = ViTArch(patch_size=args.patch_size, **base)
    cfg = FinetuneConfig(
        epochs=args.epochs, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size,
        blr=args.blr, lr=args.lr, min_lr=args.min_lr, weight_decay=args.weight_decay,
        layer_decay=args.layer_decay, drop_path=args.drop_path, mixup=args.mixup,
        cutmix=args.cutmix, mixup_prob=args.mixup_prob, mixup_switch_prob=args.mixup_switch_prob,
        smoothing=args.smoothing, reprob=args.reprob, remode=args.remode, recount=args.recount,
        crop_scale=tuple(args.crop_scale), hflip=args.hflip, vflip=args.vflip,
        clip_grad=args.clip_grad, workers=args.workers,
    )
    opts = ClassifyOptions(
        out=args.out, methods=methods, data=args.data, folds=args.folds,
        folds_file=args.folds_file, label_fraction=args.label_fraction, seed=args.seed,
        img_size=args.img_size, arch=arch,
        random_pos_embed=args.random_pos_embed, pool=args.pool, finetune=cfg,
        device=args.device, amp=args.amp,
        synth_per_class=args.synth_per_class,
        synth_crop_size=args.synth_crop_size, save_models=args.save_models,
        restart=args.restart, quiet=args.quiet, intensity_scaling=args.intensity_scaling,
        percentile_range=(low, high), pixel_stats=args.pixel_stats,
    )
    from ..classification import run_classification

    run_classification(opts)
    return 0
