"""``dama-det compare``: the paper's experiment as a tool.

For every seed and method of a run description (:mod:`.run_spec`): pretrain (MAE /
DAMA variants; nothing for random init, its A/A control ``redraw`` (the ViT's weights
drawn under seed + 1000) or a given export; the untrained export for
``init``), export the encoder, train the same Mask R-CNN schedule (on every labelled
fraction of the training images), predict the validation images (``classical``: Otsu
+ watershed, no training); then evaluate all methods of a seed together (PR-per-IoU and
error-breakdown figures overlay the methods) and write the tables of
:mod:`.compare_results` (AP per method as mean and std over seeds, gains over the
controls, AP against the labelled fraction). With a ``probe`` section, every encoder
(``init``, pretrained, given) is also probed frozen (``dama-det probe``) before detection.

Layout of the output folder (``_f<fraction>`` for label fractions below 1)::

    data/                      dataset json files, labelled subsets, pretraining crops
    runs/<method>/seed<k>/     pretrain/, encoder.pth, probe_<task>.json, detector[_f..]/,
                               predictions[_f..][_tta-<mode>]/
    runs/classical/predictions/
    eval/seed<k>[_f..][_tta-<mode>]/  metrics.json, summary.md, figures/ (all methods)
    results.md, results.csv, results.json, report.md, ap_vs_labels.png
    settings.json              per method, the settings its outputs were made with

Every stage is skipped when its outputs exist and pretraining / detector training
resume from their last checkpoints, so a killed comparison continues where it stopped;
a method added to the description later is run and the evaluations are redone with it.
A description changed in any other way (data, schedules, a method's definition) is
refused in a folder holding outputs of the old one, unless ``force`` (:mod:`.run_settings`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..utils.io import atomic_write_bytes
from . import steps
from .compare_results import evaluation_name, fraction_tag, predictions_tag, write_results
from .run_settings import check_and_record_settings
from .run_spec import REDRAW_SEED_OFFSET, MethodSpec, RunSpec, load_run_spec, pretrain_stage_options
from .stages import evaluation_lacks, run_stage


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
            train, val = data / "tiles" / "train.json", data / "tiles" / "val.json"
            self._stage("data: synthetic tissue", [data / "meta.json", train, val],
                        lambda: steps.synth_data(
                            data, seed=d.get("seed", 0), n_train_tiles=d.get("n_train_tiles"),
                            n_val_tiles=d.get("n_val_tiles"), tile_size=d.get("tile_size"),
                            n_crops_per_type=d.get("n_crops_per_type"), quiet=True, log=self.log))
            return train, val, data / "crops", 7
        if d["type"] == "coco":
            return (d["train_json"], d["val_json"], d["pretrain_crops"],
                    self._channels(d["train_json"]))
        train, val, crops = data / "train.json", data / "val.json", data / "crops"
        self._stage("data: training images -> COCO", [train],
                    lambda: steps.images_to_coco(d["train"], train, log=self.log))
        self._stage("data: validation images -> COCO", [val],
                    lambda: steps.images_to_coco(d["val"], val, log=self.log))
        self._stage("data: cell-centred pretraining crops", [crops / "crops.csv"],
                    lambda: steps.pretraining_crops(d["train"], crops,
                                                    crop_size=d.get("crop_size", 128),
                                                    max_crops=d.get("max_crops"), log=self.log))
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
    def labelled_train(self, train: Path, fraction: float, seed: int) -> Path:
        """The training json with ``fraction`` of its images (seeded, shared by all methods)."""
        if fraction == 1.0:
            return train
        subset = self.data / f"train{fraction_tag(fraction)}_seed{seed}.json"
        from ..data.label_subset import write_label_subset

        self._stage(f"data: {100 * fraction:g} % labelled subset, seed {seed}", [subset],
                    lambda: write_label_subset(train, fraction, seed, subset))
        return subset

    def _run_dir(self, m: MethodSpec, seed: int) -> Path:
        """The folder of ``m``'s pretraining, export, probes, detectors and predictions
        on ``seed``."""
        return self.out / "runs" / m.name / f"seed{seed}"

    def pretrained_encoder(self, m: MethodSpec, seed: int, crops: Path,
                           channels: int) -> Path | None:
        """Pretrain and export (methods ``init`` and pretraining); the encoder to load."""
        run = self._run_dir(m, seed)
        tag = f"{m.name} seed {seed}"
        encoder: Path | None = m.weights
        if m.kind in ("pretrain", "init"):
            p = self.spec.pretrain_of(m)
            method = m.method or "mae"

            def pretrain(untrained: bool) -> Path:
                return steps.pretrain(
                    crops, run / "pretrain", method=method, seed=seed, device=self.device,
                    **pretrain_stage_options(p, channels), untrained=untrained,
                    progress=False, extra_args=p.get("args", []), log=self.log)

            if m.kind == "init":
                encoder = run / "pretrain" / "encoder.pth"
                self._stage(f"{tag}: untrained export", [encoder], lambda: pretrain(True))
            else:
                self._stage(f"{tag}: pretrain {method}", [run / "pretrain" / "encoder.pth"],
                            lambda: pretrain(False))
                encoder = run / "encoder.pth"
                self._stage(f"{tag}: export encoder", [encoder],
                            lambda: steps.export_encoder(run / "pretrain" / "checkpoint-last.pth",
                                                         encoder, log=self.log))
        return encoder

    def probe(self, m: MethodSpec, seed: int, encoder: Path | None, crops: Path) -> dict | None:
        """Probe ``encoder`` frozen (the description's ``probe`` section); its result."""
        p = self.spec.probe
        if p is None or encoder is None:
            return None
        out = self._run_dir(m, seed) / f"probe_{p['task']}.json"
        self._stage(f"{m.name} seed {seed}: {p['task']} probe of the frozen encoder", [out],
                    lambda: steps.probe(encoder, out, task=p["task"], data=p.get("data", crops),
                                        seed=seed, device=self.device,
                                        max_images=p.get("max_images"),
                                        extra_args=p.get("args", []), log=self.log))
        return json.loads(out.read_text())

    def predictions_file(self, m: MethodSpec, seed: int, fraction: float) -> Path:
        """Where :meth:`run_method` writes ``m``'s predictions of the validation images
        (``classical``: one file for every seed and fraction)."""
        if m.kind == "classical":
            return self.out / "runs" / m.name / "predictions" / "predictions.json"
        folder = f"predictions{predictions_tag(fraction, self.spec.tta)}"
        return self._run_dir(m, seed) / folder / "predictions.json"

    def run_method(self, m: MethodSpec, seed: int, fraction: float, train: Path, val: Path,
                   encoder: Path | None) -> Path:
        """Train Mask R-CNN (from ``encoder`` if given) on ``train``, predict ``val``;
        returns the predictions json."""
        preds = self.predictions_file(m, seed, fraction)
        if m.kind == "classical":  # no training: one prediction serves every seed and fraction
            self._stage(f"{m.name}: Otsu + watershed on the validation images", [preds],
                        lambda: steps.classical(val, preds.parent, log=self.log))
            return preds
        tag = f"{m.name} seed {seed}" + (f" {100 * fraction:g} % labels" if fraction < 1 else "")
        detector = self._run_dir(m, seed) / f"detector{fraction_tag(fraction)}"
        predictions = preds.parent
        det = self.spec.detection
        opts = list(det.get("opts", []))
        if m.kind == "redraw":
            opts += ["MODEL.DAMA_VIT.INIT_SEED", seed + REDRAW_SEED_OFFSET]
        self._stage(f"{tag}: train Mask R-CNN", [detector / "model_final.pth"],
                    lambda: steps.train_detector(
                        det["config"], detector, train_json=train, val_json=val, seed=seed,
                        device=self.device, weights=encoder, iters=det.get("iters") or None,
                        opts=opts, log=self.log))
        self._stage(f"{tag}: predict validation images", [preds],
                    lambda: steps.predict(val, detector / "model_final.pth", predictions,
                                          device=self.device, quiet=True, log=self.log,
                                          tta=self.spec.tta))
        return preds

    def _stage(self, name, outputs, fn):
        return run_stage(name, outputs, fn, force=self.force, log=self.log)

    # ---- everything -----------------------------------------------------------
    def run(self) -> Path:
        """Run (or continue) the comparison; returns the path of ``results.md``."""
        record_settings = check_and_record_settings(self.out, self.spec, force=self.force)
        atomic_write_bytes(self.out / "run.yaml", self.spec.source.read_bytes())
        train, val, crops, channels = self.prepare_data()
        fractions = self.spec.label_fractions
        metrics: dict[float, dict[int, dict]] = {f: {} for f in fractions}
        probes: dict[int, dict[str, dict]] = {}
        for seed in self.spec.seeds:
            encoders = {m.name: self.pretrained_encoder(m, seed, crops, channels)
                        for m in self.spec.methods}
            probes[seed] = {m.name: r for m in self.spec.methods
                            if (r := self.probe(m, seed, encoders[m.name], crops)) is not None}
            for fraction in fractions:
                labelled = self.labelled_train(train, fraction, seed)
                preds = {m.name: self.run_method(m, seed, fraction, labelled, val, encoders[m.name])
                         for m in self.spec.methods}
                metrics[fraction][seed] = self.evaluate(preds, val,
                                                        self.evaluation_name(seed, fraction))
        results = write_results(self.out, self.spec, metrics,
                                probes=probes if self.spec.probe else None)
        record_settings()
        return results

    def evaluation_name(self, seed: int, fraction: float) -> str:
        """The folder under ``eval/`` of ``seed``'s evaluation on ``fraction``."""
        return evaluation_name(seed, fraction, self.spec.tta)

    def evaluate(self, preds: dict[str, Path], val: Path, name: str) -> dict:
        """Evaluate all methods' predictions together into ``eval/<name>``; its metrics."""
        ev = self.out / "eval" / name
        done = ev / "metrics.json"
        settings = self.spec.evaluation
        run_stage(f"{name}: evaluate all methods", [done],
                  lambda: steps.evaluate(val, preds, ev, max_dets=settings.get("max_dets"),
                                         area_ranges=settings.get("area_ranges", "cells"),
                                         log=self.log),
                  force=self.force or evaluation_lacks(done, preds), log=self.log)
        return json.loads(done.read_text())


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
