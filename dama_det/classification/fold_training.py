"""One fold of one method: fine-tune on the other folds, test on this one.

With ``--save-models`` the fine-tuned classifier is saved as
``OUT/models/<method>/fold<k>.pth`` (format ``dama_det.classifier.v1``).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.pixel_stats import pixel_stats
from ..utils import atomic_torch_save
from ..utils.device import explicit_attention_for_cpu_bf16
from ..utils.distributed import DistInfo
from ..utils.rng import seed_everything
from .augment import build_eval_transform, build_train_transform
from .dataset import CropDataset, CropIndex
from .finetuning import accuracy_percent, evaluate, finetune
from .folds import stratified_subset
from .methods import PreparedMethod
from .model import build_classifier, load_export_into, start_from_sincos_positions
from .options import ClassifyOptions

CLASSIFIER_FORMAT = "dama_det.classifier.v1"


def train_fold(opts: ClassifyOptions, info: DistInfo, device: torch.device,
               amp_dtype: torch.dtype | None, index: CropIndex, folds: list[np.ndarray],
               fold: int, m: PreparedMethod, img_size: int) -> dict[str, Any]:
    """Fine-tune on every fold but ``fold`` (on ``opts.label_fraction`` of it, stratified),
    test on ``fold``; returns the fold record."""
    cfg = opts.finetune
    num_classes = len(index.class_names)
    test_idx = folds[fold]
    fold_seed = opts.seed * 1000 + fold  # the same for every method (paper: same seed)
    train_idx = stratified_subset(np.concatenate([f for i, f in enumerate(folds) if i != fold]),
                                  index.labels, opts.label_fraction, fold_seed)
    seed_everything(fold_seed)
    model = build_classifier(m.arch, img_size=img_size, in_chans=index.in_chans,
                             num_classes=num_classes, drop_path=cfg.drop_path, pool=opts.pool)
    if m.export is not None:
        load_export_into(model, m.spec.export_path, m.export)
    elif opts.random_pos_embed == "sincos":
        start_from_sincos_positions(model)
    model.to(device)
    explicit_attention_for_cpu_bf16(model, device, amp_dtype)
    train_tf = build_train_transform(img_size, crop_scale=tuple(cfg.crop_scale), hflip=cfg.hflip,
                                     vflip=cfg.vflip, reprob=cfg.reprob, remode=cfg.remode,
                                     recount=cfg.recount)
    eval_tf = build_eval_transform(img_size)

    mean = std = None
    if opts.pixel_stats == "data":  # the training fold's statistics (no test pixels)
        raw = CropDataset(index, train_idx, scaling=opts.intensity_scaling,
                          percentile_range=opts.percentile_range)
        mean, std = pixel_stats(train_idx.tolist(), raw.scaled, seed=fold_seed)

    def crops(indices: np.ndarray, transform) -> CropDataset:
        return CropDataset(index, indices, transform, scaling=opts.intensity_scaling,
                           percentile_range=opts.percentile_range, mean=mean, std=std)

    start = time.perf_counter()
    log = finetune(model, crops(train_idx, train_tf), num_classes, cfg, device=device,
                   amp_dtype=amp_dtype, dist_info=info, seed=fold_seed,
                   desc=f"{m.spec.name} fold {fold}", show_progress=not opts.quiet)
    eval_kw = dict(device=device, amp_dtype=amp_dtype, dist_info=info,
                   batch_size=opts.eval_batch_size, workers=cfg.workers)
    test_conf = evaluate(model, crops(test_idx, eval_tf), num_classes, **eval_kw)
    seconds = time.perf_counter() - start
    train_conf = evaluate(model, crops(train_idx, eval_tf), num_classes, **eval_kw)
    if opts.save_models and info.is_main:
        atomic_torch_save({
            "format": CLASSIFIER_FORMAT, "model": model.state_dict(), "arch": asdict(m.arch),
            "img_size": img_size, "pool": opts.pool, "in_chans": index.in_chans,
            "class_names": index.class_names,
            "channel_names": index.channel_names, "method": m.spec.name, "fold": fold,
            "label_fraction": opts.label_fraction, "n_train": int(len(train_idx)),
            "intensity_scaling": opts.intensity_scaling, "pixel_mean": mean, "pixel_std": std,
        }, Path(opts.out) / "models" / m.spec.name / f"fold{fold}.pth")
    return {
        "test_acc": accuracy_percent(test_conf),
        "train_acc": accuracy_percent(train_conf),
        "n_test": int(len(test_idx)),
        "n_train": int(len(train_idx)),
        "seconds": seconds,
        "confusion": test_conf.tolist(),
        "train_confusion": train_conf.tolist(),
        "loss_per_epoch": log.loss,
        "lr_per_epoch": log.lr,
        "batch_size": log.batch_size,
        "base_lr": log.base_lr,
        "world_size": info.world_size,
        "device": str(device),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "off",
        "pixel_mean": mean,
        "pixel_std": std,
    }
