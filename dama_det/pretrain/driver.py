"""Pretraining driver: data, model, optimiser, DDP, checkpoints, logs, figures, export.

``run_pretraining(options)`` is what ``dama-det pretrain`` calls (a
:class:`~dama_det.pretrain.options.PretrainOptions`). Under ``torchrun``
(``RANK``/``WORLD_SIZE`` in the environment) it runs data-parallel (nccl on CUDA, gloo
on CPU). Each epoch it writes ``checkpoint-last.pth`` (atomically),
``checkpoint-best.pth`` when the epoch's mean loss is the lowest so far,
``checkpoint-EPOCH.pth`` every ``--save-every`` epochs, a line of ``log.jsonl``,
TensorBoard scalars and, every ``--vis-every`` epochs, a reconstruction figure; at the
end ``encoder.pth`` (the student-1 encoder export). An OUTPUT_DIR that holds an earlier
run is refused unless ``--resume`` continues it or ``--overwrite`` replaces it.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from timm.optim import param_groups_weight_decay
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..data.pixel_stats import pixel_stats
from ..errors import DamaUserError
from ..utils import autocast_context, claim_output_dir, glob_outputs, pick_device, resolve_amp_dtype
from ..utils.device import explicit_attention_for_cpu_bf16
from ..utils.distributed import barrier, init_distributed
from ..utils.optim import build_adamw
from ..utils.rng import rng_state, seed_everything, set_rng_state
from .augment import pretrain_transform, resize_transform
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .dama import DAMAPretrainer, MethodConfig
from .dataset import CropFolderDataset
from .epoch_loop import train_one_epoch
from .export import export_pretrainer, pretrainer_export
from .models_mae import mae_config
from .options import PretrainOptions
from .visualize import save_reconstruction_figure

#: Files of OUTPUT_DIR that show a pretraining run has used it (``--resume`` continues
#: it, ``--overwrite`` replaces it).
RUN_RESULTS = ("checkpoint-*.pth", "log.jsonl", "encoder.pth")
#: What ``--overwrite`` removes (the generated ``synthetic_crops/`` is kept).
RUN_OUTPUTS = (*RUN_RESULTS, "tensorboard", "figures")


def build_model(args: PretrainOptions,
                pixel_stats: tuple[list[float], list[float]] | None = None) -> DAMAPretrainer:
    """The pretraining model described by ``args`` (with input standardisation
    ``pixel_stats = (mean, std)`` if given)."""
    mean, std = pixel_stats if pixel_stats is not None else (None, None)
    model_cfg = mae_config(
        args.model, img_size=args.img_size, patch_size=args.patch_size, in_chans=args.in_chans,
        decoder_embed_dim=args.decoder_embed_dim, decoder_depth=args.decoder_depth,
        decoder_num_heads=args.decoder_num_heads, norm_pix_loss=args.norm_pix_loss,
        weight_init=args.weight_init, pixel_mean=tuple(mean) if mean is not None else None,
        pixel_std=tuple(std) if std is not None else None,
    )
    method_cfg = MethodConfig(
        method=args.method, mask_ratio=args.mask_ratio, overlap_ratio=args.overlap_ratio,
        regress_blocks=args.regress_blocks, smooth_l1_beta=args.beta,
        weight_regression=args.weight_regression, weight_recon1=args.weight_recon1,
        weight_recon2=args.weight_recon2, stable_epochs=args.stable_epochs,
        ema_momentum=args.ema_momentum,
    )
    return DAMAPretrainer(model_cfg, method_cfg)


def build_optimizer(model: DAMAPretrainer, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (0.9, 0.95), fused where supported (:func:`~dama_det.utils.optim.build_adamw`);
    no weight decay on 1-D parameters, tokens and embeddings."""
    groups = param_groups_weight_decay(model, weight_decay,
                                       no_weight_decay_list=model.no_weight_decay())
    return build_adamw(groups, lr=0.0, betas=(0.9, 0.95))


def synthetic_crops(out_dir: Path, n_per_type: int, seed: int, progress: bool = True) -> Path:
    """The built-in synthetic crops in ``out_dir``, generated once (reused when the
    folder already holds ``n_per_type`` crops per cell type, e.g. on resume)."""
    from ..data.synth import CELL_TYPES, generate_crops

    if n_per_type < 1:
        raise DamaUserError(f"--synthetic-per-type must be >= 1, got {n_per_type}")
    existing = list(out_dir.rglob("*.tif")) if (out_dir / "labels.csv").is_file() else []
    if len(existing) != n_per_type * len(CELL_TYPES):
        print(f"generating {n_per_type} synthetic crops per cell type into {out_dir}", flush=True)
        generate_crops(out_dir, n_per_type=n_per_type, seed=seed, progress=progress)
    return out_dir


def probe_encoder(model: DAMAPretrainer, args: PretrainOptions,
                  device: torch.device) -> dict[str, float]:
    """Frozen-encoder probe of student 1 (``--probe-task`` on ``--probe-data``).

    The probe works on a copy of the weights and leaves every RNG as it was, so a run
    with probes trains exactly as one without.

    Returns:
        ``{"probe_linear_balanced_accuracy": ..., "probe_linear_accuracy": ...}`` (and
        the k-NN figures for the cell-type task).
    """
    from ..probe import run_probes

    export = pretrainer_export(model)
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        result = run_probes(export, args.probe_task, args.probe_data, seed=args.seed,
                            max_images=args.probe_max_images, device=device, progress=False)
    np.random.set_state(np_state)
    random.setstate(py_state)
    out = {}
    for probe in ("linear", "knn"):
        for key in ("accuracy", "balanced_accuracy"):
            if key in result.get(probe, {}):
                out[f"probe_{probe}_{key}"] = float(result[probe][key])
    return out


def _untrained_input_stats(args: PretrainOptions) -> tuple[list[float], list[float]] | None:
    """The input standardisation a run on ``--data`` would record, for ``--untrained``.

    With ``--pixel-stats data`` and a ``--data`` folder, the statistics are computed as
    pretraining computes them, so the untrained export (the `init` control) sees input
    standardised like its pretrained counterpart's does in `dama-det probe`. Without a
    data folder there is nothing to measure: the export records none (and says so).
    The global RNGs are not touched, so the weights stay the seeded start.
    """
    if args.pixel_stats != "data":
        return None
    if not args.data or not Path(args.data).is_dir():
        print("note: no --data folder, so the untrained export records no input "
              "standardisation (a pretrained export made with --pixel-stats data does)")
        return None
    dataset = CropFolderDataset(Path(args.data), args.in_chans, None, args.scaling,
                                show_progress=False)
    return _crop_input_stats(dataset, args, show=True, progress=False)


def _crop_input_stats(dataset: CropFolderDataset, args: PretrainOptions, *, show: bool,
                      progress: bool) -> tuple[list[float], list[float]]:
    """Per-channel mean / std of (a seeded sample of up to 1000) scaled crops: the input
    standardisation a run records (``--pixel-stats data``); printed when ``show``."""
    stats = pixel_stats(range(len(dataset)), dataset.load, max_images=1000, seed=args.seed,
                        progress=progress)
    if show:
        print(f"input standardisation from the crops: mean {stats[0]}, std {stats[1]}")
    return stats


def _resolve_resume(args: PretrainOptions, out: Path) -> Path | None:
    if not args.resume:
        return None
    if args.resume == "auto":
        last = out / "checkpoint-last.pth"
        return last if last.is_file() else None
    return Path(args.resume)


@torch.no_grad()
def _figure(model: DAMAPretrainer, dataset: CropFolderDataset, args, device, amp_dtype,
            epoch: int, out: Path):
    """Reconstruction figure of the first crops (fixed masks; training RNG untouched)."""
    resize = resize_transform(args.img_size)
    k = min(args.vis_samples, len(dataset))
    imgs = torch.stack([resize(dataset.load(i)) for i in range(k)]).to(device)
    was_training = model.training
    model.eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(args.seed)
        with autocast_context(device, amp_dtype):
            _, _, outputs = model(imgs, epoch=float(epoch), return_outputs=True)
    model.train(was_training)
    save_reconstruction_figure(
        out / "figures" / f"epoch_{epoch + 1:04d}.png", imgs, outputs, args.patch_size,
        args.norm_pix_loss, dataset.channel_names, title=f"{args.method} epoch {epoch + 1}",
    )


def run_pretraining(args: PretrainOptions | argparse.Namespace) -> dict[str, Any]:
    """Pretrain as ``args`` say: the entry function of ``dama-det pretrain`` (a parsed
    namespace is converted to :class:`~.options.PretrainOptions`).

    Raises:
        DamaUserError: a bad option (checked before anything is written), or an
            OUTPUT_DIR with an earlier run and neither ``resume`` nor ``overwrite``.

    Returns:
        Summary: ``epochs_run``, ``last`` epoch stats, ``best_loss``, ``checkpoint``,
        ``export`` paths.
    """
    args = PretrainOptions.of(args).validate()
    info, device = init_distributed(pick_device(args.device), args.dist_backend)
    rank, world, local_rank, is_main = info.rank, info.world_size, info.local_rank, info.is_main
    amp_dtype = resolve_amp_dtype(args.amp, device, bf16_on_native_cpu=True)
    out = Path(args.output_dir)
    if is_main:
        claim_output_dir(out, glob_outputs(out, RUN_RESULTS), flag="--output-dir",
                         resume=bool(args.resume), overwrite=args.overwrite,
                         remove=glob_outputs(out, RUN_OUTPUTS))
    seed_everything(args.seed + rank)
    if args.untrained:
        model = build_model(args, _untrained_input_stats(args))
        export = export_pretrainer(model, out / "encoder.pth", epoch=0)
        print(f"untrained {args.method} encoder export: {export}")
        return {"epochs_run": 0, "last": {}, "best_loss": float("nan"), "checkpoint": None,
                "export": export}

    data_root = Path(args.data) if args.data else out / "synthetic_crops"
    if not args.data and is_main:
        synthetic_crops(data_root, args.synthetic_per_type, args.seed, progress=args.progress)
    barrier(info)
    transform = pretrain_transform(args.img_size, args.crop_scale, args.rotation, args.shift,
                                   args.flips)
    dataset = CropFolderDataset(data_root, args.in_chans, transform, args.scaling,
                                show_progress=is_main)
    if len(dataset) < args.batch_size * world:
        raise DamaUserError(
            f"{data_root}: {len(dataset)} crop(s) is fewer than one batch "
            f"({args.batch_size} x {world} process(es)); lower --batch-size"
        )
    out.mkdir(parents=True, exist_ok=True)
    input_stats = None
    if args.pixel_stats == "data":
        input_stats = _crop_input_stats(dataset, args, show=is_main,
                                        progress=is_main and args.progress)
    model = build_model(args, input_stats).to(device)
    explicit_attention_for_cpu_bf16(model, device, amp_dtype)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                        num_workers=args.num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator(), persistent_workers=False)

    eff_batch = args.batch_size * args.accum_iter * world
    lr = args.lr if args.lr is not None else args.blr * eff_batch / 256
    optimizer = build_optimizer(model, args.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    start_epoch, best_loss = 0, float("inf")
    resume = _resolve_resume(args, out)
    if resume is not None:
        ckpt = load_checkpoint(resume)
        check_compatible(ckpt, model.model_cfg.to_dict(), {"method": args.method}, str(resume))
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_loss = int(ckpt["epoch"]) + 1, float(ckpt.get("best_loss", best_loss))
        states = ckpt.get("rng") or []
        if len(states) == world:
            set_rng_state(states[rank])
        else:
            seed_everything(args.seed + rank + 1_000_003 * start_epoch)
        if is_main:
            print(f"resumed from {resume} at epoch {start_epoch}")

    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None)
    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
        n_params = sum(p.numel() for p in model.parameters())
        print(f"pretraining {args.method} ({args.model}, {n_params / 1e6:.2f}M "
              f"params) on {len(dataset)} crops from {data_root}, {world} process(es) on {device}, "
              f"lr {lr:.3g} (effective batch {eff_batch}), amp {amp_dtype}")
    schedule = dict(base_lr=lr, min_lr=args.min_lr, warmup_epochs=args.warmup_epochs,
                    epochs=args.epochs)
    stats: dict[str, float] = {}
    saved_args = {k: v for k, v in vars(args).items() if not callable(v)}
    common = dict(args=saved_args, model_config=model.model_cfg.to_dict(),
                  method_config=model.method_cfg.to_dict(), channel_names=dataset.channel_names)
    finished = start_epoch
    if is_main and args.probe_every and start_epoch == 0:  # the untrained encoder: step 0
        record = {"epoch": 0, "step": 0, **probe_encoder(model, args, device)}
        with open(out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if key.startswith("probe_"):
                writer.add_scalar(f"epoch/{key}", value, 0)
        print(f"epoch 0 (untrained): probe_linear_balanced_accuracy "
              f"{record.get('probe_linear_balanced_accuracy', float('nan')):.4f}", flush=True)
    for epoch in range(start_epoch, args.epochs):
        if args.stop_after_epoch is not None and epoch >= args.stop_after_epoch:
            break
        sampler.set_epoch(epoch)
        loader.generator.manual_seed(args.seed * 100_003 + epoch * 1_009 + rank)
        stats = train_one_epoch(
            ddp_model, loader, optimizer, scaler, epoch, lr_schedule=schedule, device=device,
            amp_dtype=amp_dtype, accum_iter=args.accum_iter, clip_grad=args.clip_grad,
            writer=writer,
            log_every=args.log_every, show_progress=is_main and args.progress,
        )
        states = [rng_state()]
        if world > 1:
            states = [None] * world
            dist.all_gather_object(states, rng_state())
        is_best = stats["loss"] < best_loss
        best_loss = min(best_loss, stats["loss"])
        if is_main:
            ckpt = dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scaler=scaler.state_dict(), epoch=epoch, best_loss=best_loss, rng=states,
                        **common)
            save_checkpoint(out / "checkpoint-last.pth", **ckpt)
            if is_best:
                save_checkpoint(out / "checkpoint-best.pth", **ckpt)
            if args.save_every and (epoch + 1) % args.save_every == 0:
                save_checkpoint(out / f"checkpoint-{epoch + 1:04d}.pth", **ckpt)
            if args.probe_every and ((epoch + 1) % args.probe_every == 0
                                     or epoch + 1 == args.epochs):
                stats = {**stats, **probe_encoder(model, args, device)}
            record = {"epoch": epoch + 1, **stats}
            with open(out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            for key, value in stats.items():
                writer.add_scalar(f"epoch/{key}", value, epoch + 1)
            writer.flush()
            terms = " ".join(f"{k} {stats[k]:.4f}"
                             for k in ("loss", "recon1", "recon2", "regression",
                                       "probe_linear_balanced_accuracy") if k in stats)
            print(f"epoch {epoch + 1}/{args.epochs}: {terms} lr {stats['lr']:.3g} "
                  f"{stats['images_per_s']:.1f} img/s", flush=True)
            if args.vis_every and ((epoch + 1) % args.vis_every == 0 or epoch + 1 == args.epochs):
                _figure(model, dataset, args, device, amp_dtype, epoch, out)
        finished = epoch + 1
    export = None
    if is_main:
        if writer is not None:
            writer.close()
        export = export_pretrainer(model, out / "encoder.pth", channel_names=dataset.channel_names,
                                   epoch=finished)
        print(f"encoder export: {export}")
    barrier(info)
    return {"epochs_run": finished - start_epoch, "last": stats, "best_loss": best_loss,
            "checkpoint": out / "checkpoint-last.pth", "export": export}
