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
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.pixel_stats import pixel_stats
from ..encoder_export.format import ViTArch, load_encoder_export
from ..encoder_export.loading import EncoderLoadReport
from ..encoder_export.sizes import model_size
from ..errors import DamaUserError
from ..utils import atomic_torch_save, atomic_write_bytes, atomic_write_json, pick_device
from ..utils.device import resolve_amp_dtype
from ..utils.distributed import DistInfo, barrier, cleanup, init_distributed
from ..utils.rng import seed_everything
from .augment import build_eval_transform, build_train_transform
from .dataset import CropDataset, CropIndex, probe_tiff, scan_class_folders
from .finetuning import FinetuneConfig, accuracy_percent, evaluate, finetune
from .folds import load_or_create_folds
from .model import build_classifier, load_export_into
from .table import BASELINE, MethodRow, build_table, format_duration, save_confusion_figure
from .table import to_csv, to_markdown

RESULTS_FORMAT = "dama_det.classify_results.v1"
CLASSIFIER_FORMAT = "dama_det.classifier.v1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class MethodSpec:
    """A method to compare: a name and an encoder export (None = random init)."""

    name: str
    export_path: Path | None = None


def parse_method(text: str) -> MethodSpec:
    """Parse ``--method``: ``random`` or ``NAME=EXPORT.pth``.

    Raises:
        DamaUserError: malformed value or unusable name.
    """
    name, sep, path = text.partition("=")
    name = name.strip()
    if not _NAME_RE.match(name):
        raise DamaUserError(
            f"--method {text!r}: the name must be letters, digits, '.', '_', '+' or '-'"
        )
    if name == BASELINE:
        if sep:
            raise DamaUserError(f"--method {text!r}: 'random' is random init and takes no export")
        return MethodSpec(name)
    if not sep or not path.strip():
        raise DamaUserError(f"--method {text!r}: give NAME=EXPORT.pth (or 'random')")
    return MethodSpec(name, Path(path.strip()).expanduser())


@dataclass
class ClassifyOptions:
    """Everything ``dama-det classify`` needs (see the CLI for each field's meaning)."""

    out: Path
    methods: list[MethodSpec]
    data: Path | None = None
    folds: int = 10
    folds_file: Path | None = None
    seed: int = 0
    img_size: int | None = None
    arch: ViTArch | None = None
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    device: str = "auto"
    amp: str = "auto"
    eval_batch_size: int = 256
    intensity_scaling: str = "dtype_max"
    percentile_range: tuple[float, float] = (1.0, 99.8)
    pixel_stats: str = "data"  # "data": standardise with the training fold's mean/std; "none"
    synth_per_class: int = 100
    synth_crop_size: int = 128
    save_models: bool = False
    restart: bool = False
    quiet: bool = False


@dataclass
class _Method:
    """A method ready to train: its architecture, export and load report."""

    spec: MethodSpec
    arch: ViTArch
    export: dict[str, Any] | None = None
    report: EncoderLoadReport | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Architecture and export content (sha256), so a moved export still matches."""
        export = None
        if self.spec.export_path is not None:
            digest = hashlib.sha256()
            with open(self.spec.export_path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            export = {"sha256": digest.hexdigest()}
        return {"arch": asdict(self.arch), "export": export}


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


def _resolve_img_size(opts: ClassifyOptions, index: CropIndex, exports: list[dict]) -> int:
    if opts.img_size is not None:
        return int(opts.img_size)
    common = index.common_size()
    if common is not None:
        return common
    return int(exports[0]["img_size"]) if exports else 128


def _prepare_methods(opts: ClassifyOptions, index: CropIndex, img_size: int,
                     exports: dict[str, dict[str, Any]]) -> list[_Method]:
    """Check every export fits the data (before any training starts); pick architectures."""
    methods: list[_Method] = []
    for spec in opts.methods:
        if spec.export_path is None:
            continue
        export = exports[spec.name]
        arch = ViTArch.from_export(export)
        probe = build_classifier(arch, img_size=img_size, in_chans=index.in_chans,
                                 num_classes=len(index.class_names))
        report = load_export_into(probe, spec.export_path, export)
        methods.append(_Method(spec, arch, export, report))
    default_arch = methods[0].arch if methods else ViTArch(**model_size("tiny").encoder())
    random_arch = opts.arch or default_arch
    by_name = {m.spec.name: m for m in methods}
    return [by_name.get(s.name) or _Method(s, random_arch) for s in opts.methods]


def _load_store(path: Path, restart: bool) -> dict[str, Any]:
    if restart or not path.exists():
        return {"format": RESULTS_FORMAT, "methods": {}}
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DamaUserError(
            f"{path}: cannot read stored fold results ({exc}); use --restart"
        ) from None
    if not isinstance(store, dict) or store.get("format") != RESULTS_FORMAT:
        raise DamaUserError(f"{path}: not a dama_det fold results file; use --restart")
    return store


def _check_fingerprint(path: Path, name: str, stored: dict, current: dict) -> None:
    if stored == current:
        return
    diffs = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            diffs.append(f"{prefix}: {a} -> {b}")

    walk(stored, current, "")
    raise DamaUserError(
        f"{path}: method {name!r} has finished folds made with other settings "
        f"({'; '.join(diffs[:3])}); use another --out or --restart to discard them"
    )


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
    barrier(info)
    if not info.is_main:
        folds, _ = load_or_create_folds(*args)
    return folds


def _run(opts: ClassifyOptions, info: DistInfo, device: torch.device) -> dict[str, Any]:
    amp_dtype = resolve_amp_dtype(opts.amp, device)
    out = Path(opts.out)
    names = [m.name for m in opts.methods]
    if not names:
        raise DamaUserError("no --method given")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DamaUserError(f"--method name {dup[0]!r} is given more than once")
    exports = {m.name: load_encoder_export(m.export_path) for m in opts.methods if m.export_path}
    index = _prepare_data(opts, info, out)
    img_size = _resolve_img_size(opts, index, list(exports.values()))
    methods = _prepare_methods(opts, index, img_size, exports)
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
    store = _load_store(store_path, opts.restart)
    common_fp = {
        "finetune": opts.finetune.fingerprint(), "img_size": img_size, "k": k,
        "folds_sha256": hashlib.sha256(
            json.dumps([f.tolist() for f in folds]).encode()).hexdigest(),
        "num_samples": len(index.paths), "seed": opts.seed,
        "intensity_scaling": opts.intensity_scaling,
        "percentile_range": (list(opts.percentile_range)
                             if opts.intensity_scaling == "percentile" else None),
        "pixel_stats": opts.pixel_stats,
    }
    for m in methods:
        fp = {**common_fp, **m.fingerprint()}
        entry = store["methods"].get(m.spec.name)
        if entry is not None and entry.get("folds"):
            _check_fingerprint(store_path, m.spec.name, entry.get("fingerprint"), fp)
        entry = store["methods"].setdefault(m.spec.name, {"fingerprint": fp, "folds": {}})
        entry["fingerprint"] = fp
        for fold in range(k):
            if str(fold) in entry["folds"]:
                _log(opts, info, f"{m.spec.name} fold {fold}: done earlier, skipped")
                continue
            result = _train_fold(opts, info, device, amp_dtype, index, folds, fold, m, img_size)
            entry["folds"][str(fold)] = result
            if info.is_main:
                atomic_write_json(store_path, store)
            _log(opts, info, f"{m.spec.name} fold {fold + 1}/{k}: "
                 f"test {result['test_acc']:.2f}% train {result['train_acc']:.2f}% "
                 f"({format_duration(result['seconds'])})")
    barrier(info)
    results = _summarise(opts, index, methods, store, img_size, folds_file)
    if info.is_main:
        _write_outputs(out, results, index.class_names)
        print("\n" + results["table"]["markdown"], flush=True)
        _log(opts, info, f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'results.json'}")
    return results


def _train_fold(opts: ClassifyOptions, info: DistInfo, device: torch.device,
                amp_dtype: torch.dtype | None, index: CropIndex, folds: list[np.ndarray],
                fold: int, m: _Method, img_size: int) -> dict[str, Any]:
    """Fine-tune on every fold but ``fold``, test on ``fold``; returns the fold record."""
    cfg = opts.finetune
    num_classes = len(index.class_names)
    test_idx = folds[fold]
    train_idx = np.sort(np.concatenate([f for i, f in enumerate(folds) if i != fold]))
    fold_seed = opts.seed * 1000 + fold  # the same for every method (paper: same seed)
    seed_everything(fold_seed)
    model = build_classifier(m.arch, img_size=img_size, in_chans=index.in_chans,
                             num_classes=num_classes, drop_path=cfg.drop_path)
    if m.export is not None:
        load_export_into(model, m.spec.export_path, m.export)
    model.to(device)
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
            "img_size": img_size, "in_chans": index.in_chans, "class_names": index.class_names,
            "channel_names": index.channel_names, "method": m.spec.name, "fold": fold,
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


def _summarise(opts: ClassifyOptions, index: CropIndex, methods: list[_Method], store: dict,
               img_size: int, folds_file: Path) -> dict[str, Any]:
    """Everything of the run: per-method fold records, sums, and the table."""
    k = opts.folds
    rows, per_method = [], []
    for m in methods:
        folds = store["methods"][m.spec.name]["folds"]
        records = [folds[str(i)] for i in range(k)]
        epochs = m.export.get("epoch") if m.export is not None else None
        row = MethodRow(name=m.spec.name, fold_acc=[r["test_acc"] for r in records],
                        seconds=sum(r["seconds"] for r in records),
                        pretrain_epochs=int(epochs) if epochs is not None else None)
        rows.append(row)
        confusion = np.sum([np.asarray(r["confusion"]) for r in records], axis=0)
        per_method.append({
            "name": m.spec.name,
            "row_label": row.label(),
            "export": str(m.spec.export_path) if m.spec.export_path else None,
            "pretrain_method": m.export.get("method") if m.export is not None else None,
            "pretrain_epochs": row.pretrain_epochs,
            "arch": asdict(m.arch),
            "load_report": m.report.to_dict() if m.report else None,
            "fold_acc": row.fold_acc,
            "fold_train_acc": [r["train_acc"] for r in records],
            "avg": row.avg,
            "err": 100.0 - round(row.avg, 2),
            "seconds": row.seconds,
            "confusion": confusion.tolist(),
            "folds": records,
        })
    base = next((r.avg for r in rows if r.name == BASELINE), None)
    for entry, row in zip(per_method, rows):
        entry["delta_to_random"] = (round(row.avg, 2) - round(base, 2)
                                    if base is not None else None)
    header, body = build_table(rows, k)
    return {
        "format": "dama_det.classify_summary.v1",
        "data": str(index.root),
        "class_names": index.class_names,
        "class_counts": index.class_counts(),
        "channel_names": index.channel_names,
        "in_chans": index.in_chans,
        "num_samples": len(index.paths),
        "img_size": img_size,
        "k": k,
        "seed": opts.seed,
        "folds_file": str(folds_file),
        "finetune": opts.finetune.fingerprint(),
        "intensity_scaling": opts.intensity_scaling,
        "methods": per_method,
        "table": {"header": header, "rows": body, "markdown": to_markdown(header, body),
                  "csv": to_csv(header, body)},
    }


def _write_outputs(out: Path, results: dict[str, Any], class_names: list[str]) -> None:
    table = results["table"]
    atomic_write_bytes(out / "table.md", table["markdown"].encode("utf-8"))
    atomic_write_bytes(out / "table.csv", table["csv"].encode("utf-8"))
    for m in results["methods"]:
        save_confusion_figure(out / f"confusion_{m['name']}.png", np.asarray(m["confusion"]),
                              class_names, f"{m['row_label']}, {results['k']} folds")
    atomic_write_json(out / "results.json", results)
