"""One pretraining epoch: per-iteration learning rate, AMP, gradient accumulation, DDP.

The learning rate follows a per-iteration linear warm-up then a half-cycle cosine
to ``min_lr`` (:func:`cosine_lr`). Losses are averaged over the epoch and over
processes; per-term losses are logged to TensorBoard every ``log_every`` steps.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from typing import Iterable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..errors import DamaUserError
from ..utils import autocast_context
from ..utils.distributed import unwrap_model


def cosine_lr(epoch: float, base_lr: float, min_lr: float, warmup_epochs: float,
              epochs: float) -> float:
    """Learning rate at a fractional epoch: linear warm-up, then half-cycle cosine.

    Args:
        epoch: ``epoch + iteration / iterations_per_epoch``.
        base_lr: peak learning rate.
        min_lr: final learning rate.
        warmup_epochs: length of the linear warm-up (may be 0).
        epochs: total schedule length.
    """
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-8)
    progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _worker_error(exc: Exception) -> DamaUserError:
    """A DataLoader worker re-raises our one-line error with its traceback; keep the line."""
    text = str(exc).strip().splitlines()
    last = text[-1] if text else ""
    return DamaUserError(last.split("DamaUserError: ", 1)[-1])


def train_one_epoch(
    model: torch.nn.Module,
    loader: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    *,
    lr_schedule: dict,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    accum_iter: int = 1,
    clip_grad: float | None = None,
    writer=None,
    log_every: int = 10,
    show_progress: bool = True,
) -> dict[str, float]:
    """Train for one epoch.

    Args:
        model: a :class:`dama.DAMAPretrainer`, possibly DDP-wrapped; returns
            ``(loss, terms, outputs)``.
        loader: yields ``(N, C, H, W)`` batches; must have ``len``.
        optimizer: its param groups may carry ``lr_scale``.
        scaler: GradScaler (enabled for fp16 only).
        epoch: zero-based epoch index.
        lr_schedule: keyword arguments of :func:`cosine_lr` except ``epoch``.
        device: where the model lives.
        amp_dtype: autocast dtype or None.
        accum_iter: micro-batches per optimizer step.
        clip_grad: max gradient norm (None: no clipping).
        writer: TensorBoard ``SummaryWriter`` or None.
        log_every: optimizer steps between TensorBoard points.
        show_progress: tqdm bar.

    Returns:
        Epoch means: ``loss`` and each term, plus ``lr`` (last), ``images``,
        ``time_s`` and ``images_per_s`` (all processes together).
    """
    model.train()
    core = unwrap_model(model)
    iters = len(loader)
    if iters == 0:
        raise DamaUserError(
            "the data loader yields no batch: fewer crops than --batch-size x processes")
    sums: dict[str, float] = defaultdict(float)
    count = 0
    images = 0
    lr = 0.0
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(total=iters, desc=f"epoch {epoch}", unit="it", disable=not show_progress,
               leave=False)
    iterator = iter(loader)
    for it in range(iters):
        try:
            imgs = next(iterator)
        except DamaUserError as exc:
            raise _worker_error(exc) from None
        if it % accum_iter == 0:
            lr = cosine_lr(epoch + it / iters, **lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
        imgs = imgs.to(device, non_blocking=True)
        step_now = (it + 1) % accum_iter == 0 or it + 1 == iters
        sync = contextlib.nullcontext()
        if isinstance(model, DistributedDataParallel) and not step_now:
            sync = model.no_sync()
        with sync:
            with autocast_context(device, amp_dtype):
                loss, terms, _ = model(imgs, epoch=epoch + it / iters)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise RuntimeError(
                    f"loss is {loss_value} at epoch {epoch} iteration {it}; stopping")
            scaler.scale(loss / accum_iter).backward()
        if step_now:
            if clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            core.update_teacher()
        sums["loss"] += loss_value
        for name, value in terms.items():
            sums[name] += float(value)
        count += 1
        images += imgs.shape[0]
        step = epoch * iters + it
        if writer is not None and (it % max(log_every, 1) == 0 or it + 1 == iters):
            writer.add_scalar("train/loss", loss_value, step)
            writer.add_scalar("train/lr", lr, step)
            for name, value in terms.items():
                writer.add_scalar(f"train/{name}", float(value), step)
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
        bar.update()
    bar.close()
    elapsed = time.perf_counter() - start
    stats = torch.tensor([sums[k] for k in sorted(sums)] + [count, images], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        stats = stats.to(device) if dist.get_backend() == "nccl" else stats
        dist.all_reduce(stats)
        stats = stats.cpu()
    keys = sorted(sums)
    total_count = float(stats[len(keys)])
    result = {k: float(stats[i]) / total_count for i, k in enumerate(keys)}
    result.update(lr=lr, images=float(stats[len(keys) + 1]), time_s=elapsed,
                  images_per_s=float(stats[len(keys) + 1]) / max(elapsed, 1e-9))
    return result
