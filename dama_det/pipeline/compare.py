"""``dama-det compare``: the paper's experiment as a tool.

For every seed and method of a run description (:mod:`.run_spec`): pretrain (MAE /
DAMA variants; nothing for random init or a given export), export the encoder, train
the same Mask R-CNN schedule, predict the validation images; then evaluate all methods
of a seed together (PR-per-IoU and error-breakdown figures overlay the methods) and
write one table of box/mask AP, AP50, AP75 per method as mean and std over seeds.

Layout of the output folder::

    data/                      dataset json files and pretraining crops
    runs/<method>/seed<k>/     pretrain/, encoder.pth, detector/, predictions/
    eval/seed<k>/              metrics.json, summary.md, figures/ (all methods)
    results.md, results.csv, results.json, report.md

Every stage is skipped when its outputs exist and pretraining / detector training
resume from their last checkpoints, so a killed comparison continues where it stopped.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..utils.io import atomic_write_bytes, atomic_write_json
from .run_spec import MethodSpec, RunSpec, load_run_spec
from .stages import iteration_schedule_opts, run_cli, run_stage

TABLE_METRICS = (("bbox", "AP"), ("segm", "AP"), ("bbox", "AP50"), ("bbox", "AP75"),
                 ("segm", "AP50"), ("segm", "AP75"))


class Comparison:
    """One comparison run (see module docstring).

    Args:
        spec: the parsed run description.
        out_dir: output folder.
        force: re-run stages whose outputs exist.
        device: "auto", "cpu", "cuda", ...
        log: progress printer.
    """

    def __init__(self, spec: RunSpec, out_dir: str | Path, *, force: bool = False,
                 device: str = "auto", log: Callable[[str], None] = print):
        self.spec, self.out, self.force, self.device, self.log = (
            spec, Path(out_dir).resolve(), force, device, log)
        self.data = self.out / "data"

    # ---- data ---------------------------------------------------------------
    def prepare_data(self) -> tuple[Path, Path, Path, int]:
        """Return (train_json, val_json, pretraining crops folder, channel count)."""
        d, data = self.spec.dataset, self.data
        if d["type"] == "synth":
            args = ["data", "synth", "--out", str(data), "--seed", str(d.get("seed", 0)),
                    "--quiet"]
            for key in ("n_train_tiles", "n_val_tiles", "tile_size", "n_crops_per_type"):
                if key in d:
                    args += [f"--{key.replace('_', '-')}", str(d[key])]
            train, val = data / "tiles" / "train.json", data / "tiles" / "val.json"
            self._stage("data: synthetic tissue", [data / "meta.json", train, val],
                        lambda: run_cli(args, self.log))
            return train, val, data / "crops", 7
        if d["type"] == "coco":
            return d["train_json"], d["val_json"], d["pretrain_crops"], self._channels(d["train_json"])
        train, val, crops = data / "train.json", data / "val.json", data / "crops"
        self._stage("data: training images -> COCO", [train],
                    lambda: run_cli(["data", "to-coco", str(d["train"]), "--out", str(train),
                                  "--quiet"], self.log))
        self._stage("data: validation images -> COCO", [val],
                    lambda: run_cli(["data", "to-coco", str(d["val"]), "--out", str(val),
                                  "--quiet"], self.log))
        crop_args = ["data", "crops", str(d["train"]), "--out", str(crops), "--quiet",
                     "--crop-size", str(d.get("crop_size", 128))]
        if "max_crops" in d:
            crop_args += ["--max-crops", str(d["max_crops"])]
        self._stage("data: cell-centred pretraining crops", [crops / "crops.csv"],
                    lambda: run_cli(crop_args, self.log))
        return train, val, crops, self._channels(train)

    @staticmethod
    def _channels(coco_json: Path) -> int:
        from ..data.coco_labels import load_coco_json
        from ..data.tiff_io import read_tiff

        coco = load_coco_json(coco_json)
        first = coco["images"][0]
        if "channels" in first:
            return int(first["channels"])
        return read_tiff(Path(coco_json).parent / first["file_name"]).image.shape[0]

    # ---- one method, one seed -------------------------------------------------
    def run_method(self, m: MethodSpec, seed: int, train: Path, val: Path, crops: Path,
                   channels: int) -> Path:
        """Pretrain/export (if needed), train, predict; returns the predictions json."""
        run = self.out / "runs" / m.name / f"seed{seed}"
        tag = f"{m.name} seed {seed}"
        encoder: Path | None = m.weights
        if m.kind == "pretrain":
            p = self.spec.pretrain
            args = ["pretrain", "--data", str(crops), "--output-dir", str(run / "pretrain"),
                    "--method", m.method, "--model", str(p.get("model", "test")),
                    "--epochs", str(p.get("epochs", 30)),
                    "--batch-size", str(p.get("batch_size", 32)),
                    "--in-chans", str(channels), "--seed", str(seed), "--device", self.device,
                    "--num-workers", "0", "--resume", "auto", "--no-progress",
                    *[str(a) for a in p.get("args", [])]]
            for key in ("img_size", "blr"):
                if key in p:
                    args += [f"--{key.replace('_', '-')}", str(p[key])]
            self._stage(f"{tag}: pretrain {m.method}", [run / "pretrain" / "encoder.pth"],
                        lambda: run_cli(args, self.log))
            encoder = run / "encoder.pth"
            self._stage(f"{tag}: export encoder", [encoder],
                        lambda: run_cli(["export", str(run / "pretrain" / "checkpoint-last.pth"),
                                      "--out", str(encoder)], self.log))
        det = self.spec.detection
        train_args = ["train", "--config-file", str(det["config"]),
                      "--output-dir", str(run / "detector"), "--train-json", str(train),
                      "--val-json", str(val), "--resume", "--seed", str(seed)]
        if encoder is not None:
            train_args += ["--weights", str(encoder)]
        if self.device != "auto":
            train_args += ["--device", self.device]
        opts = [str(o) for o in det.get("opts", [])]
        if det.get("iters"):
            opts = [*iteration_schedule_opts(int(det["iters"])), *opts]
        self._stage(f"{tag}: train Mask R-CNN", [run / "detector" / "model_final.pth"],
                    lambda: run_cli(train_args + opts, self.log))
        preds = run / "predictions" / "predictions.json"
        self._stage(f"{tag}: predict validation images", [preds],
                    lambda: run_cli(["predict", str(val), "--weights",
                                  str(run / "detector" / "model_final.pth"), "--out",
                                  str(run / "predictions"), "--score-thresh", "0.05",
                                  "--device", self.device, "--quiet"], self.log))
        return preds

    def _stage(self, name, outputs, fn):
        return run_stage(name, outputs, fn, force=self.force, log=self.log)

    # ---- everything -----------------------------------------------------------
    def run(self) -> Path:
        """Run (or continue) the comparison; returns the path of ``results.md``."""
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.out / "run.yaml", self.spec.source.read_bytes())
        train, val, crops, channels = self.prepare_data()
        metrics: dict[int, dict] = {}
        for seed in self.spec.seeds:
            preds = {m.name: self.run_method(m, seed, train, val, crops, channels)
                     for m in self.spec.methods}
            ev = self.out / "eval" / f"seed{seed}"
            args = ["eval", "--gt", str(val), "--out", str(ev), "--results",
                    *[f"{name}={p}" for name, p in preds.items()]]
            if self.spec.evaluation.get("max_dets"):
                args += ["--max-dets", str(self.spec.evaluation["max_dets"])]
            args += ["--area-ranges", str(self.spec.evaluation.get("area_ranges", "cells"))]
            self._stage(f"seed {seed}: evaluate all methods", [ev / "metrics.json"],
                        lambda: run_cli(args, self.log))
            metrics[seed] = json.loads((ev / "metrics.json").read_text())
        return write_results(self.out, self.spec, metrics)


def aggregate(spec: RunSpec, metrics: dict[int, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and std over seeds of every table metric: ``{method: {"bbox/AP": {mean, std, n}}}``."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for m in spec.methods:
        row = {}
        for iou_type, key in TABLE_METRICS:
            values = [metrics[s][m.name].get(iou_type, {}).get(key) for s in spec.seeds]
            values = [v for v in values if v is not None and v >= 0]
            row[f"{iou_type}/{key}"] = {
                "mean": float(np.mean(values)) if values else float("nan"),
                "std": float(np.std(values)) if values else float("nan"),
                "n": len(values)}
        table[m.name] = row
    return table


def write_results(out: Path, spec: RunSpec, metrics: dict[int, dict]) -> Path:
    """Write results.{md,csv,json} and report.md; returns results.md."""
    table = aggregate(spec, metrics)
    cols = [f"{t}/{k}" for t, k in TABLE_METRICS]
    names = {"bbox/AP": "box AP", "segm/AP": "mask AP", "bbox/AP50": "box AP50",
             "bbox/AP75": "box AP75", "segm/AP50": "mask AP50", "segm/AP75": "mask AP75"}
    n = len(spec.seeds)
    lines = [f"# {spec.name}: Mask R-CNN AP (%) per pretraining method",
             "", f"mean ± std over {n} seed(s) {spec.seeds}; same seed for every method.", "",
             "| method | " + " | ".join(names[c] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method"] + [f"{names[c]} {s}" for c in cols for s in ("mean", "std")])
    for method, row in table.items():
        lines.append(f"| {method} | " + " | ".join(
            f"{100 * row[c]['mean']:.1f} ± {100 * row[c]['std']:.1f}" for c in cols) + " |")
        writer.writerow([method] + [f"{100 * row[c][s]:.3f}" for c in cols for s in ("mean", "std")])
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    atomic_write_json(out / "results.json", {"name": spec.name, "seeds": spec.seeds,
                                            "table": table, "per_seed": metrics})
    first = out / "eval" / f"seed{spec.seeds[0]}"
    figs = sorted((first / "figures").glob("compare_*.png")) or sorted((first / "figures").glob("*.png"))
    report = lines + ["", f"## Figures (seed {spec.seeds[0]}, all methods overlaid)", ""] + [
        f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figs] + [
        "", "Per-seed numbers: `eval/seed<k>/metrics.json` and `summary.md`.", ""]
    atomic_write_bytes(out / "report.md", "\n".join(report).encode())
    path = atomic_write_bytes(out / "results.md", ("\n".join(lines) + "\n").encode())
    return path


def run_comparison(description: str | Path, out_dir: str | Path | None = None, *,
                   force: bool = False, device: str = "auto",
                   log: Callable[[str], None] = print) -> Path:
    """Load a run description and run (or continue) it; returns ``results.md``.

    Args:
        description: the YAML run description.
        out_dir: output folder (default ``outputs/compare_<name>``).
        force: re-run stages whose outputs exist.
        device: "auto", "cpu", "cuda", ...
        log: progress printer.
    """
    spec = load_run_spec(description)
    out = Path(out_dir) if out_dir else Path("outputs") / f"compare_{spec.name}"
    return Comparison(spec, out, force=force, device=device, log=log).run()
