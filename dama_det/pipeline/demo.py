"""``dama-det demo``: the main job, end to end, on the built-in synthetic data.

Stages (each skipped when its outputs exist, unless ``force``; each is also its own
subcommand, printed as it runs so it can be repeated by hand):

1. ``data``     ``dama-det data synth``: 7-channel synthetic tissue tiles + crops.
2. ``pretrain`` ``dama-det pretrain``: DAMA on the crops.
3. ``export``   ``dama-det export``: the student-1 encoder.
4. ``train``    ``dama-det train``: Mask R-CNN with the pretrained ViT backbone.
5. ``predict``  ``dama-det predict``: tiled prediction of the validation tiles.
6. ``eval``     ``dama-det eval``: box/mask AP, PR curves per IoU, error breakdown,
                beside ``dama-det classical`` (Otsu + watershed, no training) as the floor.
7. ``report``   ``report.md`` linking every table and figure.

With ``controls=True`` stages 4-5 also run, same schedule and seed, from detectron2's
random initialisation (``random``) and from the pretraining model's untrained export
(``init``, ``dama-det pretrain --untrained``) into ``controls/<name>/``, and the
evaluation and report put them beside the pretrained detector: what pretraining gained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..errors import DamaUserError
from .report import write_demo_report
from .stages import StageResult, evaluation_lacks, iteration_schedule_opts, run_cli, run_stage


@dataclass
class DemoSize:
    """Sizes of one demo run (the CPU preset is the default)."""

    train_tiles: int = 8
    val_tiles: int = 4
    tile_size: int = 256
    crops_per_type: int = 64
    pretrain_model: str = "mini"
    pretrain_epochs: int = 60
    pretrain_batch: int = 32
    pretrain_blr: float = 1e-3  # short schedules need more than the paper's 1.5e-4
    det_config: str = "quick_schedules/mask_rcnn_dama_vit_demo_cpu.yaml"
    det_iters: int = 1000
    method: str = "dama"


PRESETS: dict[str, DemoSize] = {
    # A few minutes per stage on a 2-core CPU.
    "cpu": DemoSize(),
    # The smallest end-to-end run (tests): seconds per stage, numbers near zero.
    "smoke": DemoSize(train_tiles=2, val_tiles=1, tile_size=128, crops_per_type=8,
                      pretrain_model="test", pretrain_epochs=2, pretrain_batch=16,
                      det_config="quick_schedules/mask_rcnn_dama_vit_instant_test.yaml",
                      det_iters=6),
    # ViT-tiny, the paper's pretraining recipe shortened; for a GPU.
    "gpu": DemoSize(train_tiles=64, val_tiles=8, tile_size=512, crops_per_type=2000,
                    pretrain_model="tiny", pretrain_epochs=200, pretrain_batch=256,
                    pretrain_blr=1.5e-4,
                    det_config="mask_rcnn_dama_vit_tiny_50ep_synth7.yaml", det_iters=0),
}


def run_demo(
    out_dir: str | Path,
    *,
    preset: str = "cpu",
    seed: int = 0,
    force: bool = False,
    device: str = "auto",
    controls: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Run the whole demo into ``out_dir`` and return the path of ``report.md``.

    Args:
        out_dir: output folder (data/, pretrain/, encoder.pth, detector/,
            predictions/, eval/, report.md; controls/ with ``controls``).
        preset: "cpu" (default), "smoke" (tests) or "gpu".
        seed: random seed of every stage.
        force: re-run stages whose outputs exist.
        device: "auto", "cpu", "cuda", ...
        controls: also train and evaluate the detector from random init and from the
            untrained export (same schedule and seed; three times the detector time).
        log: progress printer.
    """
    if preset not in PRESETS:
        raise DamaUserError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    size = PRESETS[preset]
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data, pre, det, pred, ev = (out / "data", out / "pretrain", out / "detector",
                                out / "predictions", out / "eval")
    encoder = out / "encoder.pth"
    train_json, val_json = data / "tiles" / "train.json", data / "tiles" / "val.json"
    results: list[StageResult] = []

    def stage(name, outputs, fn):
        results.append(run_stage(name, outputs, fn, force=force, log=log))

    stage("1/7 data: synthetic 7-channel tissue", [data / "meta.json", train_json, val_json],
          lambda: run_cli(["data", "synth", "--out", str(data),
                           "--n-train-tiles", str(size.train_tiles),
                        "--n-val-tiles", str(size.val_tiles), "--tile-size", str(size.tile_size),
                        "--n-crops-per-type", str(size.crops_per_type), "--seed", str(seed)], log))
    stage(f"2/7 pretrain: {size.method} ({size.pretrain_model} ViT, {size.pretrain_epochs} epochs)",
          [pre / "encoder.pth"],  # written when the whole schedule has run
          lambda: run_cli(["pretrain", "--data", str(data / "crops"), "--output-dir", str(pre),
                        "--method", size.method, "--model", size.pretrain_model,
                        "--epochs", str(size.pretrain_epochs),
                        "--warmup-epochs", str(max(1, size.pretrain_epochs // 10)),
                        "--batch-size", str(size.pretrain_batch), "--blr", str(size.pretrain_blr),
                        "--seed", str(seed),
                        "--device", device, "--num-workers", "0",
                        *(["--overwrite"] if force else ["--resume", "auto"])], log))
    stage("3/7 export: student-1 encoder", [encoder],
          lambda: run_cli(["export", str(pre / "checkpoint-last.pth"), "--out", str(encoder)], log))
    det_opts = ["--seed", str(seed)]
    if size.det_iters:
        det_opts += iteration_schedule_opts(size.det_iters)

    def detector(name: str, what: str, weights: Path | None, det: Path, pred: Path) -> None:
        stage(f"4/7 train: Mask R-CNN from {what}", [det / "model_final.pth"],
              lambda: run_cli(["train", "--config-file", size.det_config, "--output-dir", str(det),
                            "--train-json", str(train_json), "--val-json", str(val_json),
                            *(["--weights", str(weights)] if weights else []),
                            *(["--overwrite"] if force else ["--resume"]),
                            *(["--device", device] if device != "auto" else []), *det_opts], log))
        stage(f"5/7 predict: tiled inference on the validation tiles ({name})",
              [pred / "predictions.json"],
              lambda: run_cli(["predict", str(val_json), "--weights", str(det / "model_final.pth"),
                            "--out", str(pred), "--score-thresh", "0.05", "--device", device,
                            "--overwrite"], log))  # runs only when unfinished or forced

    detector(size.method, "the pretrained encoder", encoder, det, pred)
    methods = {size.method: pred / "predictions.json"}
    if controls:
        ctl = out / "controls"
        init_export = ctl / "init" / "encoder.pth"
        stage("3/7 export: the untrained encoder (control 'init')", [init_export],
              lambda: run_cli(["pretrain", "--data", str(data / "crops"), "--output-dir",
                               str(init_export.parent), "--method", size.method,
                               "--model", size.pretrain_model, "--seed", str(seed),
                               "--device", device, "--num-workers", "0", "--untrained",
                               *(["--overwrite"] if force else ["--resume", "auto"])], log))
        for name, what, weights in (("random", "random init (control)", None),
                                    ("init", "the untrained export (control)", init_export)):
            detector(name, what, weights, ctl / name / "detector", ctl / name / "predictions")
            methods[name] = ctl / name / "predictions" / "predictions.json"
    classical = out / "classical" / "predictions.json"

    def evaluate():
        if force or not classical.is_file():  # the training-free floor: seconds
            run_cli(["classical", str(val_json), "--out", str(classical.parent), "--quiet"], log)
        run_cli(["eval", "--gt", str(val_json), "--results",
                 *[f"{name}={p}" for name, p in methods.items()], f"classical={classical}",
                 "--out", str(ev), "--area-ranges", "cells"], log)

    metrics_file = ev / "metrics.json"
    results.append(run_stage(  # re-evaluated when the controls were added to a finished demo
        "6/7 eval: box/mask AP, PR curves, error breakdown (and the classical floor)",
        [metrics_file], evaluate, force=force or evaluation_lacks(metrics_file, methods), log=log))
    report = out / "report.md"
    changed = any(not r.skipped for r in results)  # e.g. the controls added to a finished demo
    results.append(run_stage(
        "7/7 report", [report], lambda: write_demo_report(
            out, method=size.method, settings={**asdict(size), "controls": controls},
            stages=results), force=force or changed, log=log))
    log(f"report: {report}")
    return report
