"""k-fold classification comparison of several initialisations (``dama-det classify``).

For every method (``random`` = random init, or ``NAME=EXPORT.pth``) and every fold,
a ViT classifier is fine-tuned on the other k-1 folds and tested on the fold. The
folds are made once and shared by all methods; every finished (method, fold) is kept
in ``OUT/fold_results.json`` so an interrupted run resumes where it stopped. At the
end the paper's table is written (``table.md``, ``table.csv``), one confusion-matrix
figure per method (``confusion_<method>.png``, summed over folds) and everything in
``results.json``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..encoder_export.format import load_encoder_export
from ..errors import DamaUserError
from ..utils import atomic_write_json, pick_device
from ..utils.device import resolve_amp_dtype
from ..utils.distributed import DistInfo, barrier, cleanup, init_distributed
from .dataset import CropIndex, probe_tiff, scan_class_folders
from .fold_training import train_fold
from .folds import load_or_create_folds
from .methods import prepare_methods, resolve_img_size
from .options import ClassifyOptions
from .store import check_fingerprint, load_store
from .summary import summarise, write_outputs
from .table import format_duration


def _log(opts: ClassifyOptions, info: DistInfo, text: str) -> None:
    if info.is_main and not opts.quiet:
        print(text, flush=True)


def prepare_synthetic_crops(out: Path, n_per_class: int, crop_size: int, seed: int,
                            progress: bool = True) -> Path:
    """Generate the synthetic labelled crops into ``out/synthetic_crops`` (once).

    Uses :func:`dama_det.data.synth.generate_crops` (written atomically, with a
    ``labels.csv``); an earlier folder with the same number and size of crops is
    reused as it is (generation is deterministic for a seed).

    Returns:
        The folder.
    """
    from ..data.synth import generate_crops

    target = out / "synthetic_crops"
    if (target / "labels.csv").is_file():
        class_dirs = [d for d in target.iterdir() if d.is_dir() and not d.name.startswith(".")]
        files = [sorted(d.glob("*.tif")) for d in class_dirs]
        if class_dirs and all(len(f) == n_per_class for f in files):
            _, size, _ = probe_tiff(files[0][0])
            if size == (crop_size, crop_size):
                return target
    generate_crops(target, n_per_type=n_per_class, crop_size=crop_size, seed=seed,
                   progress=progress)
    return target


def run_classification(opts: ClassifyOptions) -> dict[str, Any]:
    """Run the k-fold comparison and write the outputs under ``opts.out``.

    Args:
        opts: the run's options.

    Returns:
        The ``results.json`` content.

    Raises:
        DamaUserError: bad data, exports, folds file or stored results.
    """
    device = pick_device(opts.device)
    info, device = init_distributed(device)
    try:
        return _run(opts, info, device)
    finally:
        cleanup(info)


def _prepare_data(opts: ClassifyOptions, info: DistInfo, out: Path) -> CropIndex:
    """Index ``--data`` (or the synthetic crops, generated once by the main process)."""
    data = opts.data
    if data is None:
        if info.is_main:
            prepare_synthetic_crops(out, opts.synth_per_class, opts.synth_crop_size, opts.seed,
                                    progress=not opts.quiet)
        barrier(info)
        data = out / "synthetic_crops"
        _log(opts, info, f"data: synthetic crops in {data}")
    index = scan_class_folders(data)
    _log(opts, info, f"data: {len(index.paths)} crops, {index.in_chans} channels, classes "
         + ", ".join(f"{n} ({c})" for n, c in zip(index.class_names, index.class_counts())))
    return index


def _prepare_folds(opts: ClassifyOptions, info: DistInfo, index: CropIndex,
                   folds_file: Path) -> list[np.ndarray]:
    """Create or reuse the fold split (written by the main process, read by the others)."""
    args = (folds_file, index.sample_ids, index.labels, index.class_names, opts.folds, opts.seed)
    folds: list[np.ndarray] = []
    if info.is_main:
        folds, reused = load_or_create_folds(*args)
        _log(opts, info, f"folds: {'reused' if reused else 'wrote'} {folds_file} "
             f"(sizes {[len(f) for f in folds]})")
        if opts.label_fraction < 1:
            _log(opts, info, f"few labels: fine-tuning on {opts.label_fraction:g} of each "
                 "training fold per class (the same crops for every method)")
    barrier(info)
    if not info.is_main:
        folds, _ = load_or_create_folds(*args)
    return folds


def _run(opts: ClassifyOptions, info: DistInfo, device: torch.device) -> dict[str, Any]:
    # auto: bf16 on CPUs with native bf16 too (10 folds at E8's settings: the same test
    # accuracy per fold as fp32, ~1.9x faster; BENCHMARKS.md, classification)
    amp_dtype = resolve_amp_dtype(opts.amp, device, bf16_on_native_cpu=True)
    out = Path(opts.out)
    names = [m.name for m in opts.methods]
    if not names:
        raise DamaUserError("no --method given")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DamaUserError(f"--method name {dup[0]!r} is given more than once")
    exports = {m.name: load_encoder_export(m.export_path) for m in opts.methods if m.export_path}
    index = _prepare_data(opts, info, out)
    img_size = resolve_img_size(opts, index, list(exports.values()))
    methods = prepare_methods(opts, index, img_size, exports)
    if info.is_main:  # once the inputs are checked: a bad one leaves nothing behind
        out.mkdir(parents=True, exist_ok=True)
    for m in methods:
        if m.report is not None:
            _log(opts, info, f"{m.spec.name}: {m.report.brief()}")
            pre = m.export.get("channel_names")
            data_names = index.channel_names
            if pre and not data_names[0].startswith("ch") and pre != data_names:
                _log(opts, info, f"warning: {m.spec.name} was pretrained on channels {pre} "
                     f"but the data has {data_names}")

    k = opts.folds
    folds_file = Path(opts.folds_file) if opts.folds_file else out / "folds.json"
    folds = _prepare_folds(opts, info, index, folds_file)

    store_path = out / "fold_results.json"
    store = load_store(store_path, opts.restart)
    common_fp = {
        "finetune": opts.finetune.fingerprint(), "img_size": img_size, "k": k,
        "folds_sha256": hashlib.sha256(
            json.dumps([f.tolist() for f in folds]).encode()).hexdigest(),
        "num_samples": len(index.paths), "seed": opts.seed,
        "intensity_scaling": opts.intensity_scaling,
        "percentile_range": (list(opts.percentile_range)
                             if opts.intensity_scaling == "percentile" else None),
        "pixel_stats": opts.pixel_stats, "pool": opts.pool,
        "label_fraction": opts.label_fraction,
    }
    for m in methods:
        fp = {**common_fp, **m.fingerprint()}
        if m.export is None:  # random init: how its position table starts
            fp["random_pos_embed"] = opts.random_pos_embed
        entry = store["methods"].get(m.spec.name)
        if entry is not None and entry.get("folds"):
            stored = dict(entry.get("fingerprint") or {})
            stored.setdefault("pool", "mean")  # folds stored before --pool existed
            stored.setdefault("label_fraction", 1.0)  # ... and before --label-fraction
            check_fingerprint(store_path, m.spec.name, stored, fp)
        entry = store["methods"].setdefault(m.spec.name, {"fingerprint": fp, "folds": {}})
        entry["fingerprint"] = fp
        for fold in range(k):
            if str(fold) in entry["folds"]:
                _log(opts, info, f"{m.spec.name} fold {fold}: done earlier, skipped")
                continue
            result = train_fold(opts, info, device, amp_dtype, index, folds, fold, m, img_size)
            entry["folds"][str(fold)] = result
            if info.is_main:
                atomic_write_json(store_path, store)
            _log(opts, info, f"{m.spec.name} fold {fold + 1}/{k}: "
                 f"test {result['test_acc']:.2f}% train {result['train_acc']:.2f}% "
                 f"({format_duration(result['seconds'])})")
    barrier(info)
    results = summarise(opts, index, methods, store, img_size, folds_file)
    if info.is_main:
        write_outputs(out, results, index.class_names)
        print("\n" + results["table"]["markdown"], flush=True)
        _log(opts, info, f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'results.json'}")
    return results
