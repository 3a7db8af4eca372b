"""The encoder export: the one file that pretraining writes and that detection and
classification load.

Format (``torch.save`` of a dict)::

    {
      "format": "dama_det.encoder.v1",
      "model": {...},          # student-1 encoder state dict, timm/MAE/DeiT key names:
                               # cls_token (1, 1, D), pos_embed (1, 1 + L, D),
                               # patch_embed.proj.weight (D, C, p, p), patch_embed.proj.bias,
                               # blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*,
                               # norm.weight, norm.bias   (no decoder, no mask token)
      "img_size": 128, "patch_size": 16, "in_chans": 7,
      "embed_dim": 192, "depth": 12, "num_heads": 3, "mlp_ratio": 4.0,
      "method": "dama",        # dama / dama-ema / dama-rand / mae / random
      "channel_names": [...] or None,
      "epoch": int or None,    # 0: the untrained model (the ``init`` control)
      "pixel_mean": [...] or None,  # per-channel input standardisation used in
      "pixel_std": [...] or None,   # pretraining (None: images as scaled)
    }
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import DamaUserError
from ..utils.io import atomic_torch_save, load_torch_file

EXPORT_FORMAT = "dama_det.encoder.v1"
META_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads")


def make_encoder_export(
    encoder_state: Mapping[str, torch.Tensor],
    *,
    img_size: int,
    patch_size: int,
    in_chans: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    method: str = "dama",
    channel_names: Sequence[str] | None = None,
    epoch: int | None = None,
    pixel_mean: Sequence[float] | None = None,
    pixel_std: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The export dict (see the module docstring) of encoder weights, tensors on CPU.

    Args:
        encoder_state: encoder weights in timm ``VisionTransformer`` key names.
        img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio: the
            encoder's architecture (the pretraining grid is ``img_size // patch_size``).
        method: pretraining method name.
        channel_names: names of the input channels, if known.
        epoch: pretraining epoch the weights come from (0: untrained).
        pixel_mean, pixel_std: the input standardisation pretraining used, if any.

    Raises:
        ValueError: decoder weights in ``encoder_state``.
    """
    state = {k: v.detach().cpu().clone() for k, v in encoder_state.items()}
    bad = [k for k in state if k.startswith(("decoder", "mask_token"))]
    if bad:
        raise ValueError(f"encoder export must not contain decoder weights: {bad[:3]}")
    return {
        "format": EXPORT_FORMAT,
        "model": state,
        "img_size": int(img_size),
        "patch_size": int(patch_size),
        "in_chans": int(in_chans),
        "embed_dim": int(embed_dim),
        "depth": int(depth),
        "num_heads": int(num_heads),
        "mlp_ratio": float(mlp_ratio),
        "method": method,
        "channel_names": list(channel_names) if channel_names is not None else None,
        "epoch": epoch,
        "pixel_mean": [float(v) for v in pixel_mean] if pixel_mean is not None else None,
        "pixel_std": [float(v) for v in pixel_std] if pixel_std is not None else None,
    }


def save_encoder_export(path: str | os.PathLike, encoder_state: Mapping[str, torch.Tensor],
                        **meta: Any) -> Path:
    """Write :func:`make_encoder_export` of ``encoder_state`` (keywords ``meta``) to
    ``path`` (``.pth``) atomically; returns the written path."""
    return atomic_torch_save(make_encoder_export(encoder_state, **meta), path)


def load_encoder_export(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate an encoder export.

    Returns:
        The export dict (see module docstring); tensors on CPU.

    Raises:
        DamaUserError: missing file, not an export, or missing metadata.
    """
    path = Path(path)
    obj = load_torch_file(path, "weights file")
    if not isinstance(obj, dict) or obj.get("format") != EXPORT_FORMAT:
        raise DamaUserError(
            f"{path}: not a dama_det encoder export (expected format {EXPORT_FORMAT!r}; "
            "create one with `dama-det export`)"
        )
    missing = [k for k in (*META_KEYS, "model") if k not in obj]
    if missing:
        raise DamaUserError(f"{path}: encoder export lacks key(s) {', '.join(missing)}")
    if obj["model"]["patch_embed.proj.weight"].shape[1] != obj["in_chans"]:
        raise DamaUserError(f"{path}: patch_embed weight does not match in_chans={obj['in_chans']}")
    return obj


# --------------------------------------------------------------------------------------
# Writing an export from a pretraining model or checkpoint (the pretrain helper's part).

#: prefixes of the timm VisionTransformer encoder keys inside one student.
ENCODER_KEY_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")


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
    from .checkpoint import load_checkpoint

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
