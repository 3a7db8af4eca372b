"""Fine-tuning and evaluation loops for the ViT classifier (one fold at a time).

The recipe of MAE/DAMA fine-tuning, built from timm's parts: layer-wise lr decay
(``param_groups_layer_decay``), AdamW, per-iteration linear warm-up then cosine decay
(``CosineLRScheduler`` with ``t_in_epochs=False``), drop path (in the model),
mixup/cutmix (``timm.data.Mixup``) with ``SoftTargetCrossEntropy``, else label
smoothing (``LabelSmoothingCrossEntropy``). AMP on CUDA (bf16, or fp16 with a
GradScaler), optional bf16 autocast on CPU, DDP when launched by torchrun.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import param_groups_layer_decay
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset
from tqdm.auto import tqdm

from ..errors import DamaUserError
from ..utils.device import autocast_context
from ..utils.distributed import DistInfo, all_reduce_sum, unwrap_model
from ..utils.optim import build_adamw


@dataclass
class FinetuneConfig:
    """Fine-tuning hyper-parameters (defaults: the paper's fine-tuning table).

    ``lr`` = ``blr * batch_size * world_size / 256`` unless ``lr`` is given.
    """

    epochs: int = 150
    warmup_epochs: float = 5.0
    batch_size: int = 128
    blr: float = 1e-2
    lr: float | None = None
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    layer_decay: float = 0.65
    drop_path: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    smoothing: float = 0.1
    reprob: float = 0.25
    remode: str = "const"
    recount: int = 1
    crop_scale: tuple[float, float] = (1.0, 1.0)
    hflip: float = 0.5
    vflip: float = 0.5
    clip_grad: float | None = None
    workers: int = 2

    @property
    def mixup_active(self) -> bool:
        """True when mixup or cutmix mixes the batches."""
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change results (everything but the loader workers)."""
        d = asdict(self)
        d.pop("workers")
        d["crop_scale"] = list(self.crop_scale)
        return d


@dataclass
class TrainLog:
    """Per-epoch mean training loss and last learning rate of the top layer group."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    batch_size: int = 0
    base_lr: float = 0.0


def finetune(
    model: torch.nn.Module,
    train_set: Dataset,
    num_classes: int,
    cfg: FinetuneConfig,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    dist_info: DistInfo,
    seed: int = 0,
    desc: str = "fine-tune",
    show_progress: bool = True,
) -> TrainLog:
    """Fine-tune ``model`` on ``train_set`` in place.

    Args:
        model: the classifier (already on ``device``; wrapped in DDP here if needed).
        train_set: yields ``(image (C, S, S), label)`` with training augmentation.
        num_classes: number of classes.
        cfg: hyper-parameters.
        device: where to compute.
        amp_dtype: autocast dtype or None (full precision).
        dist_info: process group information.
        seed: seed of the sample order.
        desc: progress bar label.
        show_progress: show a tqdm bar over epochs (main process only).

    Returns:
        The :class:`TrainLog`.

    Raises:
        DamaUserError: too few training samples for one batch, or a non-finite loss.
    """
    per_rank = len(train_set) // dist_info.world_size
    batch_size = min(cfg.batch_size, per_rank)
    if cfg.mixup_active:
        batch_size -= batch_size % 2  # timm's batch mixup pairs samples
    if batch_size < (2 if cfg.mixup_active else 1):
        raise DamaUserError(
            f"{len(train_set)} training sample(s) are too few for one batch per process"
        )
    generator = torch.Generator().manual_seed(seed)
    if dist_info.enabled:
        sampler = DistributedSampler(train_set, num_replicas=dist_info.world_size,
                                     rank=dist_info.rank, shuffle=True, seed=seed,
                                     drop_last=True)
    else:
        sampler = RandomSampler(train_set, generator=generator)
    loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, pin_memory=device.type == "cuda",
                        persistent_workers=cfg.workers > 0, generator=generator)

    if dist_info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    bare = unwrap_model(model)
    groups = param_groups_layer_decay(bare, weight_decay=cfg.weight_decay,
                                      no_weight_decay_list=bare.no_weight_decay(),
                                      layer_decay=cfg.layer_decay)
    base_lr = cfg.lr if cfg.lr is not None else cfg.blr * batch_size * dist_info.world_size / 256
    optimizer = build_adamw(groups, lr=base_lr)
    iters_per_epoch = len(loader)
    total = cfg.epochs * iters_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * iters_per_epoch)), max(total - 1, 0))
    # timm warns when the cosine part is a single step (runs no longer than warm-up).
    cosine_logger = logging.getLogger("timm.scheduler.cosine_lr")
    level = cosine_logger.level
    cosine_logger.setLevel(logging.ERROR)
    try:
        scheduler = CosineLRScheduler(optimizer, t_initial=max(total - warmup, 1),
                                      lr_min=cfg.min_lr, warmup_t=warmup, warmup_lr_init=0.0,
                                      warmup_prefix=True, t_in_epochs=False)
    finally:
        cosine_logger.setLevel(level)
    mixup_fn = None
    if cfg.mixup_active:
        mixup_fn = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                         switch_prob=cfg.mixup_switch_prob, mode="batch",
                         label_smoothing=cfg.smoothing, num_classes=num_classes)
        criterion: torch.nn.Module = SoftTargetCrossEntropy()
    elif cfg.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    else:
        criterion = torch.nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    log = TrainLog(batch_size=batch_size, base_lr=base_lr)
    model.train()
    step = 0
    bar = tqdm(range(cfg.epochs), desc=desc, leave=False,
               disable=not (dist_info.is_main and show_progress))
    for epoch in bar:
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        loss_sum, n_batches = 0.0, 0
        for images, targets in loader:
            scheduler.step_update(step)
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            if mixup_fn is not None:
                images, targets = mixup_fn(images, targets)
            with autocast_context(device, amp_dtype):
                logits = model(images)
                loss = criterion(logits.float(), targets)
            if not math.isfinite(loss.item()):
                raise DamaUserError(
                    f"{desc}: training loss became {loss.item()} at epoch {epoch}; "
                    "lower the learning rate (--blr/--lr) or use --amp off"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item()
            n_batches += 1
            step += 1
        top_lr = max(g["lr"] for g in optimizer.param_groups)
        log.loss.append(loss_sum / max(n_batches, 1))
        log.lr.append(top_lr)
        bar.set_postfix(loss=f"{log.loss[-1]:.3f}", lr=f"{top_lr:.2e}")
    bar.close()
    return log


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    num_classes: int,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    dist_info: DistInfo,
    batch_size: int = 128,
    workers: int = 0,
) -> np.ndarray:
    """Confusion matrix of ``model`` on ``dataset`` (each process takes a shard).

    Args:
        model: the classifier.
        dataset: yields ``(image (C, S, S), label)`` without augmentation.
        num_classes: number of classes.
        device, amp_dtype, dist_info: as for :func:`finetune`.
        batch_size: images per forward pass.
        workers: loader worker processes.

    Returns:
        int64 ``(num_classes, num_classes)``: rows true class, columns prediction.
    """
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    shard = Subset(dataset, list(range(dist_info.rank, len(dataset), dist_info.world_size)))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with autocast_context(device, amp_dtype):
            pred = model(images).argmax(dim=1)
        confusion += torch.bincount(targets * num_classes + pred,
                                    minlength=num_classes * num_classes)
    all_reduce_sum(confusion, dist_info)
    model.train(was_training)
    return confusion.view(num_classes, num_classes).cpu().numpy()


def accuracy_percent(confusion: np.ndarray) -> float:
    """Top-1 accuracy in percent from a confusion matrix (0 for an empty one)."""
    total = int(confusion.sum())
    return 100.0 * float(np.trace(confusion)) / total if total else 0.0
