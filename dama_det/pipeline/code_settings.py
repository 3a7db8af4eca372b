"""The settings a comparison's outputs take from dama_det itself, not from its description.

A description names a pretraining length and a detector config, but the pretraining
command's defaults (weight init, mask ratio, warm-up, ...), the named model size and the
detector config's keys (its YAML file and ``_BASE_`` chain, dama_det's and Detectron2's
defaults) come from the installed code and config files. They change with an upgrade or
an edit of a config file, and ``dama-det compare`` would then continue an output folder
with stages made by the old code. :func:`code_settings` lists them, so
:mod:`.run_settings` records them beside the description and names each one that changed.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable, Mapping

#: pretraining options that say where and how a run executes or reports, not what it learns
_PRETRAIN_RUN_ONLY = frozenset({
    "data", "output_dir", "seed", "device", "num_workers", "resume", "overwrite", "progress",
    "untrained", "stop_after_epoch", "save_every", "vis_every", "vis_samples", "log_every",
    "probe_every", "probe_task", "probe_data", "probe_max_images", "dist_backend", "slurm",
    "nodes", "ngpus", "partition", "timeout_min", "mem_gb", "cpus_per_task", "slurm_dir"})
#: detector config keys that `dama-det compare` sets per run (folders, data, seeds, weights)
_DETECTOR_RUN_ONLY = ("OUTPUT_DIR", "DATASETS.", "SEED", "MODEL.WEIGHTS",
                      "MODEL.DAMA_VIT.INIT_SEED")


def pretraining_defaults() -> dict[str, Any]:
    """``dama-det pretrain``'s defaults for every option that shapes what it learns.

    Returns:
        ``{option: default}``, run-only options (paths, seed, device, logging, SLURM) left out.
    """
    from ..pretrain.options import PretrainOptions

    return {k: v for k, v in PretrainOptions.parser_defaults().items()
            if k not in _PRETRAIN_RUN_ONLY}


def model_size_settings(name: str) -> dict[str, Any] | None:
    """The widths and depths of the model size ``name`` (None for an unknown name, which
    the pretraining stage itself reports)."""
    from ..encoder_export.sizes import MODEL_SIZES

    size = MODEL_SIZES.get(name)
    return None if size is None else {k: v for k, v in asdict(size).items() if k != "note"}


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def detector_config_settings(config: str, overridden: Iterable[str] = ()) -> dict[str, Any]:
    """Every key of the detector config ``config`` as it resolves: dama_det's and
    Detectron2's defaults with the file and its ``_BASE_`` chain merged in.

    Args:
        config: a config path or a name in the config folders (as ``detection.config``).
        overridden: keys the run sets itself (left out: the description records them).

    Returns:
        ``{"MODEL.ROI_HEADS.NAME": "CascadeROIHeads", ...}``, without ``overridden`` and
        the keys compare sets per run (``OUTPUT_DIR``, ``DATASETS.*``, seeds, weights).

    Raises:
        DamaUserError: the config is not found or does not read (file and key named).
    """
    from ..config import get_dama_cfg
    from ..engine.config_files import find_config_file, merge_config_file

    cfg = merge_config_file(get_dama_cfg(), find_config_file(config))
    skip = set(overridden)
    return {k: v for k, v in _flatten(cfg).items()
            if k not in skip and not any(k == p or (p.endswith(".") and k.startswith(p))
                                         for p in _DETECTOR_RUN_ONLY)}


def code_settings(pretrain: Mapping[str, Any] | None,
                  detection: Mapping[str, Any] | None,
                  pretrain_given: Iterable[str] = ()) -> dict[str, Any]:
    """What one method's outputs take from the installed code and config files.

    Args:
        pretrain: the method's pretraining section (None: the method does not pretrain).
        detection: the description's detection section (None: the method trains no
            detector).
        pretrain_given: the pretraining options the run sets itself (from its description
            or preset) besides those the section's ``args`` flags name: their defaults
            shape nothing, so they are left out.

    Returns:
        ``{"pretrain": defaults, "model_size": widths, "detector": config keys}``, each
        only where it applies; the pretraining defaults without the options the run sets,
        the detector's keys without those the description's ``opts`` and ``iters`` set.
    """
    settings: dict[str, Any] = {}
    if pretrain is not None:
        from ..pretrain.options import PretrainOptions

        given = {*pretrain_given, *PretrainOptions.options_named(pretrain.get("args", []))}
        settings["pretrain"] = {k: v for k, v in pretraining_defaults().items()
                                if k not in given}
        settings["model_size"] = model_size_settings(str(pretrain.get("model", "test")))
    if detection is not None:
        from .stages import iteration_schedule_opts

        schedule = iteration_schedule_opts(1)[0::2] if detection.get("iters") else []
        opts = [str(k) for k in list(detection.get("opts", []))[0::2]]
        settings["detector"] = detector_config_settings(str(detection["config"]),
                                                        [*schedule, *opts])
    return settings
