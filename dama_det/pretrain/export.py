"""Encoder exports of pretraining models and checkpoints (the file format itself is
:mod:`dama_det.encoder_export.format`).

Student 1's encoder of a ``DAMAPretrainer`` is sliced out of the model (at the end of
``dama-det pretrain``) or out of a pretraining checkpoint (``dama-det export``) and
written with its architecture, method, epoch, channel names and input standardisation.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..encoder_export.format import ENCODER_KEY_PREFIXES, make_encoder_export, save_encoder_export
from ..errors import DamaUserError
from ..utils.io import atomic_torch_save
from .checkpoint import load_checkpoint
from .options import ExportOptions


def encoder_state_from_pretrainer_state(
    state: Mapping[str, torch.Tensor], student: str = "student1"
) -> dict[str, torch.Tensor]:
    """Slice one student's encoder out of a ``DAMAPretrainer`` state dict.

    Args:
        state: the pretraining model's ``state_dict()`` (keys ``student1.blocks.0...``).
        student: which student (``student1`` is the one detection/classification use).

    Returns:
        The encoder weights in timm ``VisionTransformer`` key names.
    """
    prefix = f"{student}."
    return {
        k[len(prefix):]: v for k, v in state.items()
        if k.startswith(prefix) and k[len(prefix):].startswith(ENCODER_KEY_PREFIXES)
    }


def pretrainer_export(
    model: torch.nn.Module,
    channel_names: Sequence[str] | None = None,
    epoch: int | None = None,
) -> dict[str, Any]:
    """The export dict of a ``DAMAPretrainer``'s student-1 encoder (weights copied).

    Args:
        model: a ``dama_det.pretrain.dama.DAMAPretrainer`` (not DDP-wrapped).
        channel_names: input channel names.
        epoch: the number of epochs the weights were trained for.
    """
    cfg = model.model_cfg
    return make_encoder_export(
        model.encoder_state_dict(), img_size=cfg.img_size, patch_size=cfg.patch_size,
        in_chans=cfg.in_chans, embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio, method=model.method, channel_names=channel_names, epoch=epoch,
        pixel_mean=cfg.pixel_mean, pixel_std=cfg.pixel_std,
    )


def export_pretrainer(
    model: torch.nn.Module,
    out_path: str | os.PathLike,
    channel_names: Sequence[str] | None = None,
    epoch: int | None = None,
) -> Path:
    """Write :func:`pretrainer_export` of ``model`` to ``out_path`` (``.pth``) atomically;
    returns the written path."""
    return atomic_torch_save(pretrainer_export(model, channel_names, epoch), out_path)


def export_checkpoint(ckpt_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write the student-1 encoder of a pretraining checkpoint as an encoder export.

    Args:
        ckpt_path: a ``checkpoint-*.pth`` written by ``dama-det pretrain``.
        out_path: the export to write (atomically).

    Returns:
        The written path.

    Raises:
        DamaUserError: not a pretraining checkpoint, or it lacks encoder weights.
    """
    ckpt = load_checkpoint(ckpt_path)
    cfg = ckpt["model_config"]
    state = encoder_state_from_pretrainer_state(ckpt["model"])
    if "patch_embed.proj.weight" not in state:
        raise DamaUserError(f"{ckpt_path}: checkpoint holds no student-1 encoder weights")
    return save_encoder_export(
        out_path, state, img_size=cfg["img_size"], patch_size=cfg["patch_size"],
        in_chans=cfg["in_chans"], embed_dim=cfg["embed_dim"], depth=cfg["depth"],
        num_heads=cfg["num_heads"], mlp_ratio=cfg.get("mlp_ratio", 4.0),
        method=ckpt["method_config"].get("method", "dama"),
        channel_names=ckpt.get("channel_names"), epoch=int(ckpt["epoch"]) + 1,
        pixel_mean=cfg.get("pixel_mean"), pixel_std=cfg.get("pixel_std"),
    )


def run_export(opts: ExportOptions) -> Path:
    """``dama-det export``: write the student-1 encoder of ``opts.checkpoint`` to
    ``opts.out`` and print what it holds; returns the export's path."""
    from ..encoder_export.format import load_encoder_export
    from ..utils import check_output_file

    opts.validate()
    path = export_checkpoint(opts.checkpoint, check_output_file(opts.out))
    meta = load_encoder_export(path)
    print(f"wrote {path}: {meta['method']} encoder, {meta['embed_dim']}/{meta['depth']}/"
          f"{meta['num_heads']}, {meta['in_chans']} channels, {meta['img_size']} px, "
          f"patch {meta['patch_size']}, epoch {meta['epoch']}")
    return path
