"""The encoder export file: the one file that pretraining writes and that detection,
classification and the probes load.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import DamaUserError
from ..utils.io import atomic_torch_save, load_torch_file

EXPORT_FORMAT = "dama_det.encoder.v1"
META_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads")
#: prefixes of the timm ``VisionTransformer`` encoder keys an export holds.
ENCODER_KEY_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")

#: Where an export comes from: a file, or an export dict already in memory.
ExportSource = str | os.PathLike | Mapping[str, Any]


@dataclass
class ViTArch:
    """Encoder architecture (the export's metadata fields)."""

    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0

    @classmethod
    def from_export(cls, export: Mapping[str, Any]) -> "ViTArch":
        """The architecture recorded in an encoder export."""
        return cls(patch_size=int(export["patch_size"]), embed_dim=int(export["embed_dim"]),
                   depth=int(export["depth"]), num_heads=int(export["num_heads"]),
                   mlp_ratio=float(export.get("mlp_ratio", 4.0)))


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


def read_encoder_export(source: ExportSource) -> tuple[dict[str, Any], str]:
    """An export dict and its name for messages, from a file or an in-memory export.

    Args:
        source: an export file, or an export dict (:func:`make_encoder_export`).

    Returns:
        ``(export, name)``: the file's path, or for a dict its ``method`` (else
        ``"in-memory export"``).

    Raises:
        DamaUserError: missing file, not an export, or an in-memory dict that is not one.
    """
    if isinstance(source, Mapping):
        if source.get("format") != EXPORT_FORMAT or "model" not in source:
            raise DamaUserError(f"in-memory weights are not a {EXPORT_FORMAT!r} encoder export")
        return dict(source), str(source.get("method") or "in-memory export")
    return load_encoder_export(source), str(source)


def describe_export(export: Mapping[str, Any]) -> str:
    """An export's architecture, e.g. ``in_chans=7 embed_dim=192 depth=12 ...``."""
    keys = ("in_chans", "embed_dim", "depth", "num_heads", "patch_size", "img_size")
    return " ".join(f"{k}={export.get(k)}" for k in keys)
