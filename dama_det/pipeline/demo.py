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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..errors import DamaUserError
from .report import write_demo_report
from .stages import StageResult, iteration_schedule_opts, run_cli, run_stage


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
                    pretrain_model="tiny", pretrain_epochs=200, pretrain_batch=256, pretrain_blr=1.5e-4,
                    det_config="mask_rcnn_dama_vit_tiny_50ep_synth7.yaml", det_iters=0),
}


def run_demo(
    out_dir: str | Path,
    *,
    preset: str = "cpu",
    seed: int = 0,
    force: bool = False,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> Path:
    """Run the whole demo into ``out_dir`` and return the path of ``report.md``.

    Args:
        out_dir: output folder (data/, pretrain/, encoder.pth, detector/,
            predictions/, eval/, report.md).
        preset: "cpu" (default), "smoke" (tests) or "gpu".
        seed: random seed of every stage.
        force: re-run stages whose outputs exist.
        device: "auto", "cpu", "cuda", ...
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
          lambda: run_cli(["data", "synth", "--out", str(data), "--n-train-tiles", str(size.train_tiles),
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
                        *([] if force else ["--resume", "auto"])], log))
    stage("3/7 export: student-1 encoder", [encoder],
          lambda: run_cli(["export", str(pre / "checkpoint-last.pth"), "--out", str(encoder)], log))
    det_opts = ["--seed", str(seed)]
    if size.det_iters:
        det_opts += iteration_schedule_opts(size.det_iters)
    stage("4/7 train: Mask R-CNN from the pretrained encoder", [det / "model_final.pth"],
          lambda: run_cli(["train", "--config-file", size.det_config, "--output-dir", str(det),
                        "--train-json", str(train_json), "--val-json", str(val_json),
                        "--weights", str(encoder), *([] if force else ["--resume"]),
                        *(["--device", device] if device != "auto" else []), *det_opts], log))
    stage("5/7 predict: tiled inference on the validation tiles", [pred / "predictions.json"],
          lambda: run_cli(["predict", str(val_json), "--weights", str(det / "model_final.pth"),
                        "--out", str(pred), "--score-thresh", "0.05", "--device", device], log))
    classical = out / "classical" / "predictions.json"

    def evaluate():
        if force or not classical.is_file():  # the training-free floor: seconds
            run_cli(["classical", str(val_json), "--out", str(classical.parent), "--quiet"], log)
        run_cli(["eval", "--gt", str(val_json), "--results",
                 f"{size.method}={pred / 'predictions.json'}", f"classical={classical}",
                 "--out", str(ev), "--area-ranges", "cells"], log)

    stage("6/7 eval: box/mask AP, PR curves, error breakdown (and the classical floor)",
          [ev / "metrics.json"], evaluate)
    report = out / "report.md"
    stage("7/7 report", [report],
          lambda: write_demo_report(out, method=size.method, settings=asdict(size),
                                    stages=results))
    log(f"report: {report}")
    return report
