"""The pipeline's stages as typed calls, shared by ``dama-det demo`` and ``dama-det compare``.

Each function runs one stage in this process: it builds the stage's typed options (the
dataclass its subcommand parses into, e.g. :class:`~dama_det.pretrain.options.PretrainOptions`;
defaults and checks are the command line's, :mod:`dama_det.options`) and calls the
stage's entry function, the one the subcommand calls, through :func:`~.stages.run_command`,
which logs the equivalent ``dama-det`` command so the stage can be repeated by hand. No
argument lists are built; only a run description's free-form flags (``pretrain.args``,
``probe.args``) are parsed, by the subcommand's parser, on top of the typed values
(:meth:`~dama_det.options.StageOptions.with_args`), and Detectron2 ``KEY VALUE``
overrides stay strings in :attr:`~dama_det.engine.options.TrainOptions.opts`. Compare and
demo call these functions and never build options themselves.

Every function raises :class:`~dama_det.errors.ReportedError` when the stage stops on a
user error (its ``error:`` line already printed), and
:class:`~dama_det.errors.DamaUserError` for a bad free-form flag.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..data.options import CropsOptions, SynthOptions, ToCocoOptions
from ..engine.options import TrainOptions
from ..evaluation.options import EvalOptions
from ..inference.options import ClassicalOptions, PredictOptions
from ..pretrain.options import ExportOptions, PretrainOptions
from ..probe.options import ProbeOptions
from .stages import iteration_schedule_opts, run_command

Log = Callable[[str], None]


def _given(**values) -> dict:
    """The values that are not None (None keeps the command's default)."""
    return {key: value for key, value in values.items() if value is not None}


def synth_data(out: Path, *, seed: int, n_train_tiles: int | None = None,
               n_val_tiles: int | None = None, tile_size: int | None = None,
               n_crops_per_type: int | None = None, quiet: bool = False,
               log: Log = print) -> None:
    """``dama-det data synth``: synthetic 7-channel tiles (``out/tiles/{train,val}.json``)
    and crops (``out/crops``); None keeps the command's default."""
    from ..data.options import run_synth

    run_command(SynthOptions(out=str(out), seed=seed, quiet=quiet, **_given(
        n_train_tiles=n_train_tiles, n_val_tiles=n_val_tiles, tile_size=tile_size,
        n_crops_per_type=n_crops_per_type)), run_synth, log)


def images_to_coco(images: Path, out: Path, *, log: Log = print) -> None:
    """``dama-det data to-coco``: a folder of image / ``_masks`` pairs -> COCO json ``out``."""
    from ..data.options import run_to_coco

    run_command(ToCocoOptions(folder=str(images), out=str(out), quiet=True), run_to_coco, log)


def pretraining_crops(images: Path, out: Path, *, crop_size: int = 128,
                      max_crops: int | None = None, log: Log = print) -> None:
    """``dama-det data crops``: cell-centred crops of ``images`` into ``out`` (crops.csv)."""
    from ..data.options import run_crops

    run_command(CropsOptions(inputs=[str(images)], out=str(out), quiet=True,
                             crop_size=crop_size, **_given(max_crops=max_crops)), run_crops, log)


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
            ``pretrain.args``), applied last.

    Raises:
        DamaUserError: a flag in ``extra_args`` the command does not take (named).
    """
    from ..pretrain.driver import run_pretraining

    options = PretrainOptions(
        data=str(crops), output_dir=str(out), method=method, model=model, seed=seed,
        device=device, num_workers=0, overwrite=overwrite,
        resume=None if overwrite else "auto", progress=progress, untrained=untrained,
        **_given(epochs=epochs, batch_size=batch_size, in_chans=in_chans, img_size=img_size,
                 blr=blr, warmup_epochs=warmup_epochs))
    run_command(options.with_args(extra_args), run_pretraining, log)
    return Path(out) / "encoder.pth"


def export_encoder(checkpoint: Path, out: Path, *, log: Log = print) -> Path:
    """``dama-det export``: the student-1 encoder of a pretraining checkpoint -> ``out``."""
    from ..pretrain.export import run_export

    run_command(ExportOptions(checkpoint=str(checkpoint), out=str(out)), run_export, log)
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
    from ..engine.launch import run_training

    run_command(TrainOptions(
        config_file=str(config), output_dir=str(out), train_json=str(train_json),
        val_json=str(val_json), seed=seed, weights=None if weights is None else str(weights),
        overwrite=overwrite, resume=not overwrite, device=None if device == "auto" else device,
        opts=detector_opts(iters, opts)), run_training, log)
    return Path(out) / "model_final.pth"


def detector_opts(iters: int | None, opts: Sequence[object] = ()) -> list[str]:
    """The config overrides :func:`train_detector` passes: the schedule for ``iters``
    (:func:`~.stages.iteration_schedule_opts`; none for None or 0), then ``opts`` as
    strings (a description's ``detection.opts``, which win)."""
    schedule = iteration_schedule_opts(int(iters)) if iters else []
    return [*schedule, *[str(o) for o in opts]]


def predict(images: Path, weights: Path, out: Path, *, device: str = "auto",
            score_thresh: float = 0.05, tta: str = "off", quiet: bool = False,
            log: Log = print) -> Path:
    """``dama-det predict``: tiled prediction of ``images`` (COCO json, folder or image)
    with a trained detector (``tta``: its ``--tta``), replacing earlier predictions in
    ``out``; returns ``out/predictions.json``."""
    from ..inference.predict_command import run_predict

    run_command(PredictOptions(inputs=[str(images)], weights=str(weights), out=str(out),
                               score_thresh=score_thresh, device=device, quiet=quiet,
                               overwrite=True, tta=tta), run_predict, log)
    return Path(out) / "predictions.json"


def classical(images: Path, out: Path, *, log: Log = print) -> Path:
    """``dama-det classical``: Otsu + watershed instances (no training) of ``images``;
    returns ``out/predictions.json``."""
    from ..inference.classical import run_classical

    run_command(ClassicalOptions(inputs=[str(images)], out=str(out), quiet=True),
                run_classical, log)
    return Path(out) / "predictions.json"


def probe(weights: Path, out: Path, *, task: str, data: Path, seed: int, device: str = "auto",
          max_images: int | None = None, extra_args: Sequence[str] = (),
          log: Log = print) -> Path:
    """``dama-det probe``: frozen-encoder probes of ``weights`` on ``data``; the result
    json ``out``.

    Args:
        extra_args: further ``dama-det probe`` flags (a compare description's
            ``probe.args``), applied last.

    Raises:
        DamaUserError: a flag in ``extra_args`` the command does not take (named).
    """
    from ..probe.run import run_probe

    options = ProbeOptions(weights=str(weights), task=task, data=Path(data), seed=seed,
                           device=device, out=Path(out), quiet=True,
                           **_given(max_images=max_images))
    run_command(options.with_args(extra_args), run_probe, log)
    return Path(out)


def evaluate(gt: Path, results: Mapping[str, Path], out: Path, *,
             area_ranges: str = "cells", max_dets: str | int | None = None,
             log: Log = print) -> Path:
    """``dama-det eval``: every method's predictions against ``gt`` together (tables and
    figures overlay the methods); returns ``out/metrics.json``."""
    from ..evaluation.eval_command import run_eval

    run_command(EvalOptions(gt=str(gt), out=str(out), area_ranges=str(area_ranges),
                            results=[f"{name}={path}" for name, path in results.items()],
                            **_given(max_dets=max_dets)), run_eval, log)
    return Path(out) / "metrics.json"
