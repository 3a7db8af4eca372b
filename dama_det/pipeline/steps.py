"""The pipeline's stages as typed calls, shared by ``dama-det demo`` and ``dama-det compare``.

Each function runs one stage in this process from typed arguments. It turns them into
its subcommand's arguments in this one place and runs the subcommand's own parser and
implementation (:func:`~.stages.run_cli`), so a stage has exactly the command line's
defaults and checks, and the log shows the ``dama-det`` command that repeats it by hand.
Compare and demo call these functions and never build argument lists themselves.

Every function raises :class:`~dama_det.errors.ReportedError` when the stage stops on a
user error (its ``error:`` line already printed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from .stages import iteration_schedule_opts, run_cli

Log = Callable[[str], None]


def _flags(**values) -> list[str]:
    """``--key value`` pairs of the values that are not None (``_`` -> ``-``)."""
    out: list[str] = []
    for key, value in values.items():
        if value is not None:
            out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def synth_data(out: Path, *, seed: int, n_train_tiles: int | None = None,
               n_val_tiles: int | None = None, tile_size: int | None = None,
               n_crops_per_type: int | None = None, quiet: bool = False,
               log: Log = print) -> None:
    """``dama-det data synth``: synthetic 7-channel tiles (``out/tiles/{train,val}.json``)
    and crops (``out/crops``); None keeps the command's default."""
    run_cli(["data", "synth", "--out", str(out), "--seed", str(seed),
             *_flags(n_train_tiles=n_train_tiles, n_val_tiles=n_val_tiles, tile_size=tile_size,
                     n_crops_per_type=n_crops_per_type), *(["--quiet"] if quiet else [])], log)


def images_to_coco(images: Path, out: Path, *, log: Log = print) -> None:
    """``dama-det data to-coco``: a folder of image / ``_masks`` pairs -> COCO json ``out``."""
    run_cli(["data", "to-coco", str(images), "--out", str(out), "--quiet"], log)


def pretraining_crops(images: Path, out: Path, *, crop_size: int = 128,
                      max_crops: int | None = None, log: Log = print) -> None:
    """``dama-det data crops``: cell-centred crops of ``images`` into ``out`` (crops.csv)."""
    run_cli(["data", "crops", str(images), "--out", str(out), "--quiet",
             "--crop-size", str(crop_size), *_flags(max_crops=max_crops)], log)


def pretrain(crops: Path, out: Path, *, method: str, model: str, seed: int, device: str,
             epochs: int | None = None, batch_size: int | None = None,
             in_chans: int | None = None, img_size: int | None = None,
             blr: float | None = None, warmup_epochs: float | None = None,
             untrained: bool = False, overwrite: bool = False, progress: bool = True,
             extra_args: Sequence[str] = (), log: Log = print) -> Path:
    """``dama-det pretrain`` on ``crops`` into ``out`` (resumed when ``out`` holds an
    unfinished run; replaced with ``overwrite``); ``untrained``: write the untrained
    export only (the ``init`` control). Returns ``out/encoder.pth``.

    Args:
        extra_args: further ``dama-det pretrain`` flags (a compare description's
            ``pretrain.args``), appended last.
    """
    run_cli(["pretrain", "--data", str(crops), "--output-dir", str(out), "--method", method,
             "--model", model, "--seed", str(seed), "--device", device, "--num-workers", "0",
             *_flags(epochs=epochs, batch_size=batch_size, in_chans=in_chans, img_size=img_size,
                     blr=blr, warmup_epochs=warmup_epochs),
             *(["--overwrite"] if overwrite else ["--resume", "auto"]),
             *([] if progress else ["--no-progress"]), *(["--untrained"] if untrained else []),
             *[str(a) for a in extra_args]], log)
    return Path(out) / "encoder.pth"


def export_encoder(checkpoint: Path, out: Path, *, log: Log = print) -> Path:
    """``dama-det export``: the student-1 encoder of a pretraining checkpoint -> ``out``."""
    run_cli(["export", str(checkpoint), "--out", str(out)], log)
    return Path(out)


def train_detector(config: str | Path, out: Path, *, train_json: Path, val_json: Path,
                   seed: int, device: str = "auto", weights: Path | None = None,
                   iters: int | None = None, opts: Sequence[str] = (), overwrite: bool = False,
                   log: Log = print) -> Path:
    """``dama-det train``: Mask R-CNN from ``weights`` (an encoder export; None = random
    init) into ``out``, resumed from its last checkpoint unless ``overwrite``.

    Args:
        iters: train this many iterations (lr steps, warm-up and checkpoints scaled with
            it, :func:`~.stages.iteration_schedule_opts`); None keeps the config's schedule.
        opts: further config overrides (KEY VALUE ...), after the schedule's.

    Returns:
        ``out/model_final.pth``.
    """
    schedule = iteration_schedule_opts(int(iters)) if iters else []
    run_cli(["train", "--config-file", str(config), "--output-dir", str(out),
             "--train-json", str(train_json), "--val-json", str(val_json), "--seed", str(seed),
             *(["--weights", str(weights)] if weights is not None else []),
             *(["--overwrite"] if overwrite else ["--resume"]),
             *(["--device", device] if device != "auto" else []),
             *schedule, *[str(o) for o in opts]], log)
    return Path(out) / "model_final.pth"


def predict(images: Path, weights: Path, out: Path, *, device: str = "auto",
            score_thresh: float = 0.05, quiet: bool = False, log: Log = print) -> Path:
    """``dama-det predict``: tiled prediction of ``images`` (COCO json, folder or image)
    with a trained detector, replacing earlier predictions in ``out``; returns
    ``out/predictions.json``."""
    run_cli(["predict", str(images), "--weights", str(weights), "--out", str(out),
             "--score-thresh", str(score_thresh), "--device", device,
             *(["--quiet"] if quiet else []), "--overwrite"], log)
    return Path(out) / "predictions.json"


def classical(images: Path, out: Path, *, log: Log = print) -> Path:
    """``dama-det classical``: Otsu + watershed instances (no training) of ``images``;
    returns ``out/predictions.json``."""
    run_cli(["classical", str(images), "--out", str(out), "--quiet"], log)
    return Path(out) / "predictions.json"


def probe(weights: Path, out: Path, *, task: str, data: Path, seed: int, device: str = "auto",
          max_images: int | None = None, extra_args: Sequence[str] = (),
          log: Log = print) -> Path:
    """``dama-det probe``: frozen-encoder probes of ``weights`` on ``data``; the result
    json ``out``."""
    run_cli(["probe", "--weights", str(weights), "--task", task, "--data", str(data),
             "--seed", str(seed), "--device", device, "--out", str(out), "--quiet",
             *_flags(max_images=max_images), *[str(a) for a in extra_args]], log)
    return Path(out)


def evaluate(gt: Path, results: Mapping[str, Path], out: Path, *,
             area_ranges: str = "cells", max_dets: str | int | None = None,
             log: Log = print) -> Path:
    """``dama-det eval``: every method's predictions against ``gt`` together (tables and
    figures overlay the methods); returns ``out/metrics.json``."""
    run_cli(["eval", "--gt", str(gt), "--out", str(out), "--results",
             *[f"{name}={path}" for name, path in results.items()],
             *_flags(max_dets=max_dets), "--area-ranges", str(area_ranges)], log)
    return Path(out) / "metrics.json"
