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
from . import steps
from .code_settings import code_settings
from .report import write_demo_report
from .run_settings import check_and_record
from .stages import StageResult, evaluation_lacks, run_stage


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
    # About 5 minutes on a 2-core CPU (issue 12's budget). Pretraining does not buy
    # detector AP at CPU budgets (BENCHMARKS.md, transfer study), so the time saved by
    # bf16 pretraining was not spent on more pretraining steps.
    "cpu": DemoSize(pretrain_epochs=15, det_iters=500),
    # The earlier default, about 10 minutes: 3x the pretraining, 2x the detector schedule.
    "cpu-long": DemoSize(),
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
        preset: "cpu" (default, ~5 min), "cpu-long" (~10 min), "smoke" (tests) or "gpu".
        seed: random seed of every stage.
        force: re-run stages whose outputs exist (and so allow another preset or seed
            in an ``out_dir`` holding a demo's outputs).
        device: "auto", "cpu", "cuda", ...
        controls: also train and evaluate the detector from random init and from the
            untrained export (same schedule and seed; three times the detector time).
        log: progress printer.

    Raises:
        DamaUserError: unknown preset; ``out_dir`` holds a demo made with another preset
            or seed (unless ``force``).
    """
    if preset not in PRESETS:
        raise DamaUserError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    size = PRESETS[preset]
    out = Path(out_dir).resolve()
    schedule = dict(epochs=size.pretrain_epochs, warmup_epochs=max(1, size.pretrain_epochs // 10),
                    batch_size=size.pretrain_batch, blr=size.pretrain_blr)
    code = code_settings({"model": size.pretrain_model},
                         {"config": size.det_config, "iters": size.det_iters},
                         pretrain_given={"method", "model", *schedule})
    record_settings = check_and_record(out, {"demo": {**asdict(size), "seed": seed,
                                                      "code": code}}, force=force)
    data, pre, det, pred, ev = (out / "data", out / "pretrain", out / "detector",
                                out / "predictions", out / "eval")
    encoder = out / "encoder.pth"
    train_json, val_json = data / "tiles" / "train.json", data / "tiles" / "val.json"
    results: list[StageResult] = []

    def stage(name, outputs, fn):
        results.append(run_stage(name, outputs, fn, force=force, log=log))

    stage("1/7 data: synthetic 7-channel tissue", [data / "meta.json", train_json, val_json],
          lambda: steps.synth_data(data, seed=seed, n_train_tiles=size.train_tiles,
                                   n_val_tiles=size.val_tiles, tile_size=size.tile_size,
                                   n_crops_per_type=size.crops_per_type, log=log))

    def pretrain(out: Path, untrained: bool) -> Path:
        return steps.pretrain(
            data / "crops", out, method=size.method, model=size.pretrain_model, seed=seed,
            device=device, untrained=untrained, overwrite=force,
            **({} if untrained else schedule), log=log)

    stage(f"2/7 pretrain: {size.method} ({size.pretrain_model} ViT, {size.pretrain_epochs} epochs)",
          [pre / "encoder.pth"],  # written when the whole schedule has run
          lambda: pretrain(pre, untrained=False))
    stage("3/7 export: student-1 encoder", [encoder],
          lambda: steps.export_encoder(pre / "checkpoint-last.pth", encoder, log=log))

    def detector(name: str, what: str, weights: Path | None, det: Path, pred: Path) -> None:
        stage(f"4/7 train: Mask R-CNN from {what}", [det / "model_final.pth"],
              lambda: steps.train_detector(size.det_config, det, train_json=train_json,
                                           val_json=val_json, seed=seed, device=device,
                                           weights=weights, iters=size.det_iters or None,
                                           overwrite=force, log=log))
        stage(f"5/7 predict: tiled inference on the validation tiles ({name})",
              [pred / "predictions.json"],  # runs only when unfinished or forced
              lambda: steps.predict(val_json, det / "model_final.pth", pred, device=device,
                                    log=log))

    detector(size.method, "the pretrained encoder", encoder, det, pred)
    methods = {size.method: pred / "predictions.json"}
    if controls:
        ctl = out / "controls"
        init_export = ctl / "init" / "encoder.pth"
        stage("3/7 export: the untrained encoder (control 'init')", [init_export],
              lambda: pretrain(init_export.parent, untrained=True))
        for name, what, weights in (("random", "random init (control)", None),
                                    ("init", "the untrained export (control)", init_export)):
            detector(name, what, weights, ctl / name / "detector", ctl / name / "predictions")
            methods[name] = ctl / name / "predictions" / "predictions.json"
    classical = out / "classical" / "predictions.json"

    def evaluate():
        if force or not classical.is_file():  # the training-free floor: seconds
            steps.classical(val_json, classical.parent, log=log)
        steps.evaluate(val_json, {**methods, "classical": classical}, ev, log=log)

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
    record_settings()
    return report
