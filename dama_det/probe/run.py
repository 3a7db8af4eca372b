"""One entry point for all probes: :func:`run_probes` (used by ``dama-det probe``).

- ``celltype``: pooled features of labelled crops (by default the patch tokens at the
  crop's centre, where a cell-centred crop has its cell; ``pool="mean"``: all of them);
  a cosine k-NN probe and a linear probe, each scored on the test side of every
  stratified fold (default 2 folds: a 50/50 split evaluated both ways) and averaged
  over the folds.
- ``dense``: patch tokens of image tiles; a linear probe of the patch class
  (background / interior / boundary, :mod:`.dense`), trained on the patches of half
  of the images and scored on the other half (split by image).

The encoder is an export (path or in-memory dict) or, with ``weights=None``, an
untrained encoder of the named pretraining size (:mod:`.features`). With
``with_random=True`` the export's untrained counterpart (same architecture, seed
``seed``) is probed on the same split too, and the differences are reported.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import DamaUserError
from .options import ProbeOptions

PROBE_FORMAT = "dama_det.probe.v1"
TASKS = ("celltype", "dense")


def _chance(labels: np.ndarray, num_classes: int) -> dict[str, float]:
    counts = np.bincount(labels, minlength=num_classes)
    present = int((counts > 0).sum())
    return {"balanced_accuracy": 1.0 / max(present, 1),
            "majority_accuracy": float(counts.max() / max(counts.sum(), 1))}


def _probe_celltype(encoder, crops, images, folds, *, extract, knn_kw, linear_kw) -> dict:
    from .knn import knn_probe
    from .linear import linear_probe
    from .metrics import mean_metrics

    t0 = time.perf_counter()
    pooled, _ = extract(encoder, images, keep_patches=False, desc="celltype features")
    t1 = time.perf_counter()
    labels = torch.from_numpy(crops.labels)
    knn, lin = [], []
    for train, test in folds:
        tr, te = torch.from_numpy(train), torch.from_numpy(test)
        kw = dict(num_classes=len(crops.class_names), class_names=crops.class_names)
        knn.append(knn_probe(pooled[tr], labels[tr], pooled[te], labels[te], **kw, **knn_kw))
        lin.append(linear_probe(pooled[tr], labels[tr], pooled[te], labels[te], **kw,
                                **linear_kw))
    return {"encoder": encoder.info.to_dict(), "knn": mean_metrics(knn),
            "linear": mean_metrics(lin),
            "seconds": {"features": t1 - t0, "probes": time.perf_counter() - t1}}


def _probe_dense(encoder, tiles, split, *, extract, linear_kw) -> dict:
    from .dense import DENSE_CLASSES
    from .linear import linear_probe

    if tuple(encoder.grid_size) != tuple(tiles.targets.shape[1:]):
        raise DamaUserError(f"encoder patch grid {encoder.grid_size} does not match the "
                            f"targets' {tiles.targets.shape[1:]} (patch size mismatch)")
    t0 = time.perf_counter()
    _, patches = extract(encoder, tiles, keep_patches=True, desc="dense features")
    t1 = time.perf_counter()
    feats = patches.reshape(-1, patches.shape[-1])
    targets = torch.from_numpy(tiles.targets.reshape(-1))
    train, test = (torch.from_numpy(s) for s in split)
    out = linear_probe(feats[train], targets[train], feats[test], targets[test],
                       num_classes=len(DENSE_CLASSES), class_names=DENSE_CLASSES, **linear_kw)
    return {"encoder": encoder.info.to_dict(), "linear": out,
            "seconds": {"features": t1 - t0, "probes": time.perf_counter() - t1}}


def run_probes(
    weights: str | os.PathLike | Mapping[str, Any] | None,
    task: str,
    data: str | os.PathLike,
    *,
    img_size: int | None = None,
    max_images: int | None = None,
    seed: int = 0,
    model_size: str = "mini",
    patch_size: int = 16,
    with_random: bool = False,
    pool: str = "centre",
    device: str | torch.device = "auto",
    amp: str = "off",
    batch_size: int = 64,
    folds: int = 2,
    test_fraction: float = 0.5,
    knn_k: int = 20,
    knn_temperature: float = 0.07,
    knn_weighting: str = "temperature",
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    interior_min: float = 0.5,
    scaling: str = "dtype_max",
    progress: bool = True,
) -> dict[str, Any]:
    """Probe a frozen encoder on a task; returns a JSON-ready result.

    Args:
        weights: encoder export (path or the export dict, e.g. built in memory during
            pretraining); None = an untrained encoder of ``model_size``.
        task: ``"celltype"`` or ``"dense"``.
        data: the task's folder (crops with ``labels.csv``; image/mask pairs).
        img_size: encoder input side (crops are resized to it, images are cut into
            tiles of it); default the export's, else 128.
        max_images: use a seeded subset of this many crops (class-balanced) / images.
        seed: seed of the split, the subset and the random encoder's weights.
        model_size: size of the untrained encoder when ``weights`` is None (``test``,
            ``mini``, ``tiny``, ``small``, ``base``).
        patch_size: its patch size.
        with_random: also probe the export's untrained counterpart.
        pool: ``celltype``'s crop feature: the mean of the ``"centre"`` patch tokens
            (``classification.model.centre_patch_grid``) or of all of them (``"mean"``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        amp: ``"off"``, ``"bf16"``, ``"fp16"`` or ``"auto"`` autocast of the encoder.
        batch_size: images per forward pass.
        folds: stratified folds of ``celltype`` (>= 2).
        test_fraction: fraction of the images tested on in ``dense``.
        knn_k, knn_temperature, knn_weighting: the k-NN probe (:mod:`.knn`).
        weight_decay, max_iter: the linear probe (:mod:`.linear`; class-balanced).
        interior_min: ``dense`` patch rule (:func:`.dense.patch_targets`).
        scaling: intensity scaling (``dtype_max``, ``percentile``, ``none``).
        progress: tqdm bars.

    Returns:
        ``format``, ``task``, ``data``, ``encoder`` (source, architecture), ``dataset``
        (counts, classes), ``split``, ``chance`` (balanced and majority-class
        accuracy of a trivial predictor), ``knn`` (celltype only) and ``linear``
        (``accuracy``, ``balanced_accuracy``, ``per_class_recall``, ``confusion``...),
        ``settings``, ``seconds``; with ``with_random``: ``random`` (the counterpart's
        ``encoder``/``knn``/``linear``) and ``delta`` (export minus random).

    Raises:
        DamaUserError: unknown task, bad data folder, an export that does not fit the
            data (channels), or bad settings.
    """
    from ..encoder_export.format import read_encoder_export
    from ..utils.device import pick_device, resolve_amp_dtype
    from .features import (
        POOLS,
        build_probe_encoder,
        extract_features,
        random_export_like,
        random_export_of_size,
    )

    t_start = time.perf_counter()
    if task not in TASKS:
        raise DamaUserError(f"unknown probe task {task!r}; choose one of {', '.join(TASKS)}")
    if pool not in POOLS:
        raise DamaUserError(f"unknown --pool {pool!r}; choose one of {', '.join(POOLS)}")
    if max_images is not None and max_images < 2:
        raise DamaUserError(f"--max-images must be at least 2, got {max_images}")
    if not 0.0 < interior_min <= 1.0:
        raise DamaUserError(f"--interior-min must be in (0, 1], got {interior_min}")
    export, name = read_encoder_export(weights) if weights is not None else (None, None)
    size = int(img_size or (export["img_size"] if export else 128))
    patch = int(export["patch_size"]) if export else int(patch_size)
    if size % patch:
        raise DamaUserError(f"image size {size} is not a multiple of the patch size {patch}")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    amp_dtype = resolve_amp_dtype(amp, dev)

    def extract(encoder, images, *, keep_patches, desc):
        return extract_features(encoder, images, batch_size=batch_size, device=dev,
                                amp_dtype=amp_dtype, keep_patches=keep_patches,
                                progress=progress, desc=desc)

    result: dict[str, Any] = {"format": PROBE_FORMAT, "task": task,
                              "data": str(Path(data).resolve())}
    t_data = time.perf_counter()
    if task == "celltype":
        from .celltype import CropImages, scan_labelled_crops
        from .splits import stratified_folds, subsample

        crops = scan_labelled_crops(data)
        crops = crops.subset(subsample(len(crops.paths), max_images, seed, crops.labels))
        in_chans = crops.in_chans
        split = stratified_folds(crops.labels, folds, seed)
        images = CropImages(crops, size, scaling)
        labels, class_names = crops.labels, crops.class_names
        counts = np.bincount(labels, minlength=len(class_names)).tolist()
        result["dataset"] = {"n_crops": len(crops.paths), "class_names": class_names,
                             "class_counts": counts, "in_chans": in_chans}
        result["split"] = {"kind": "stratified k-fold", "folds": folds,
                           "test_sizes": [len(te) for _, te in split]}
    else:
        from .dense import DENSE_CLASSES, build_dense_tiles
        from .splits import group_split

        tiles = build_dense_tiles(data, img_size=size, patch_size=patch, max_images=max_images,
                                  seed=seed, interior_min=interior_min, scaling=scaling)
        in_chans = tiles.in_chans
        groups = tiles.patch_groups()
        targets = tiles.targets.reshape(-1)
        train, test = group_split(groups, test_fraction, seed)
        train, test = train[targets[train] >= 0], test[targets[test] >= 0]
        split = (train, test)
        labels, class_names = targets[targets >= 0], list(DENSE_CLASSES)
        result["dataset"] = {
            "n_images": len(tiles.pairs), "n_tiles": len(tiles), "n_patches": int(targets.size),
            "n_ignored": int((targets < 0).sum()), "class_names": class_names,
            "class_counts": np.bincount(labels, minlength=3).tolist(), "in_chans": in_chans,
        }
        result["split"] = {
            "kind": "by image", "test_fraction": test_fraction,
            "train_images": int(len(np.unique(groups[train]))),
            "test_images": int(len(np.unique(groups[test]))),
            "train_patches": int(len(train)), "test_patches": int(len(test)),
            "train_class_counts": np.bincount(targets[train], minlength=3).tolist(),
            "test_class_counts": np.bincount(targets[test], minlength=3).tolist(),
        }
    data_seconds = time.perf_counter() - t_data
    if export is not None and int(export["in_chans"]) != in_chans:
        raise DamaUserError(f"{name}: encoder was pretrained on {export['in_chans']} "
                            f"channel(s) but the {task} data has {in_chans}")
    if task == "dense":
        result["chance"] = _chance(targets[split[1]], len(class_names))
    else:
        result["chance"] = _chance(labels, len(class_names))

    if export is None:
        export, name = random_export_of_size(model_size, img_size=size, in_chans=in_chans,
                                             patch_size=patch, seed=seed), "random"
    encoders = [("main", export, name)]
    if with_random and name != "random":
        encoders.append(("random", random_export_like(export, seed=seed), "random"))

    knn_kw = dict(k=knn_k, temperature=knn_temperature, weighting=knn_weighting)
    linear_kw = dict(weight_decay=weight_decay, max_iter=max_iter)
    runs = {}
    for key, exp, label in encoders:
        encoder = build_probe_encoder(exp, name=label, img_size=size, seed=seed,
                                      pool=pool if task == "celltype" else "mean")
        if task == "celltype":
            runs[key] = _probe_celltype(encoder, crops, images, split, extract=extract,
                                        knn_kw=knn_kw, linear_kw=linear_kw)
        else:
            runs[key] = _probe_dense(encoder, tiles, split, extract=extract, linear_kw=linear_kw)
        del encoder

    main = runs["main"]
    result["encoder"] = main["encoder"]
    for probe in ("knn", "linear"):
        if probe in main:
            result[probe] = main[probe]
    if "random" in runs:
        rnd = runs["random"]
        result["random"] = {k: v for k, v in rnd.items() if k != "seconds"}
        result["delta"] = {
            f"{probe}_{metric}": main[probe][metric] - rnd[probe][metric]
            for probe in ("knn", "linear") if probe in main
            for metric in ("accuracy", "balanced_accuracy")
        }
    result["settings"] = {
        "img_size": size, "patch_size": patch, "seed": seed, "max_images": max_images,
        "device": str(dev), "amp": amp, "batch_size": batch_size, "scaling": scaling,
        "folds": folds if task == "celltype" else None,
        "pool": pool if task == "celltype" else None,
        "test_fraction": test_fraction if task == "dense" else None,
        "knn": knn_kw if task == "celltype" else None,
        "linear": dict(linear_kw, balanced=True),
        "interior_min": interior_min if task == "dense" else None,
        "model_size": model_size if name == "random" else None,
    }
    result["seconds"] = {
        "data": data_seconds,
        "features": sum(r["seconds"]["features"] for r in runs.values()),
        "probes": sum(r["seconds"]["probes"] for r in runs.values()),
        "total": time.perf_counter() - t_start,
    }
    return result


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """Human-readable lines of a :func:`run_probes` result (what the CLI prints)."""
    enc = result["encoder"]
    lines = [f"probe {result['task']}: encoder {enc['source']} ({enc['embed_dim']}d x "
             f"{enc['depth']}, patch {enc['patch_size']}, {enc['img_size']}px)"]
    chance = result["chance"]
    lines.append(f"  chance: balanced acc {chance['balanced_accuracy']:.3f}, majority acc "
                 f"{chance['majority_accuracy']:.3f}")
    for who, res in (("", result), ("random ", result.get("random") or {})):
        for probe in ("knn", "linear"):
            if probe in res:
                m = res[probe]
                recall = ", ".join(f"{k} {v:.3f}" for k, v in m["per_class_recall"].items()
                                   if v is not None)
                lines.append(f"  {who}{probe}: acc {m['accuracy']:.3f}, balanced acc "
                             f"{m['balanced_accuracy']:.3f} (recall: {recall})")
    for key, value in (result.get("delta") or {}).items():
        lines.append(f"  delta {key}: {value:+.3f}")
    lines.append(f"  {result['seconds']['total']:.1f} s")
    return lines


def run_probe(opts: ProbeOptions) -> dict[str, Any]:
    """Probe as ``opts`` say, print the summary and write ``opts.out``: the entry
    function of ``dama-det probe``; returns the result.

    Raises:
        DamaUserError: a bad option, encoder export or data folder (checked first).
    """
    from ..utils import atomic_write_json, check_output_file

    opts.validate()
    if opts.out is not None:
        check_output_file(opts.out)
    result = run_probes(
        None if opts.random else opts.weights, opts.task, opts.data,
        img_size=opts.img_size, max_images=opts.max_images, seed=opts.seed,
        model_size=opts.model, patch_size=opts.patch_size, with_random=opts.with_random,
        pool=opts.pool, device=opts.device, amp=opts.amp, batch_size=opts.batch_size,
        folds=opts.folds,
        test_fraction=opts.test_fraction, knn_k=opts.knn_k, knn_weighting=opts.knn_weighting,
        weight_decay=opts.weight_decay, max_iter=opts.max_iter,
        interior_min=opts.interior_min, scaling=opts.intensity_scaling,
        progress=not opts.quiet,
    )
    for line in summary_lines(result):
        print(line)
    if opts.out is not None:
        atomic_write_json(opts.out, result)
        print(f"-> {opts.out}")
    return result
