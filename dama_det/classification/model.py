"""The ViT classifier and its initialisation from a pretraining export.

The classifier is timm's ``VisionTransformer`` with global average pooling over the
patch tokens followed by ``fc_norm`` (``global_pool="avg"``; the final ``norm`` is
then an identity), as in MAE/DAMA fine-tuning. An encoder export (see
:mod:`dama_det.pretrain.export`) holds the same key names, so loading it leaves only
``head.*`` and ``fc_norm.*`` missing and ``norm.*`` unexpected. The position
embedding is resampled with timm's ``resample_abs_pos_embed`` when the fine-tuning
image size gives another patch grid than pretraining.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from ..errors import DamaUserError
from ..pretrain.export import load_encoder_export

ARCH_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}
# Keys a classifier may lack after loading an encoder export (new head + pooling norm).
ALLOWED_MISSING_PREFIXES = ("head.", "fc_norm.")


@dataclass
class ViTArch:
    """Encoder architecture (the export's metadata fields)."""

    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0

    @classmethod
    def from_export(cls, export: dict[str, Any]) -> "ViTArch":
        """The architecture recorded in an encoder export."""
        return cls(patch_size=int(export["patch_size"]), embed_dim=int(export["embed_dim"]),
                   depth=int(export["depth"]), num_heads=int(export["num_heads"]),
                   mlp_ratio=float(export.get("mlp_ratio", 4.0)))


@dataclass
class LoadReport:
    """What happened when an export was loaded into a classifier."""

    path: str
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    pos_embed_resampled: tuple[list[int], list[int]] | None = None
    pretrain_epoch: int | None = None
    pretrain_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the log."""
        text = (f"loaded {self.path}: missing {self.missing_keys or 'none'}, "
                f"unexpected {self.unexpected_keys or 'none'}")
        if self.pos_embed_resampled:
            old, new = self.pos_embed_resampled
            text += f", pos_embed resampled {old[0]}x{old[1]} -> {new[0]}x{new[1]}"
        return text


def build_classifier(
    arch: ViTArch, *, img_size: int, in_chans: int, num_classes: int, drop_path: float = 0.0
) -> VisionTransformer:
    """A randomly initialised ViT classifier (avg pooling + fc_norm + linear head).

    Args:
        arch: encoder architecture.
        img_size: input side length (multiple of ``arch.patch_size``).
        in_chans: input channels.
        num_classes: output classes.
        drop_path: stochastic depth rate.

    Returns:
        The model; ``model(x)`` maps ``(N, C, S, S)`` to logits ``(N, num_classes)``.
    """
    if img_size % arch.patch_size:
        raise DamaUserError(
            f"image size {img_size} is not a multiple of the patch size {arch.patch_size}; "
            "choose another --img-size"
        )
    if arch.embed_dim % arch.num_heads:
        raise DamaUserError(
            f"embed dim {arch.embed_dim} is not divisible by {arch.num_heads} heads"
        )
    return VisionTransformer(
        img_size=img_size, patch_size=arch.patch_size, in_chans=in_chans,
        num_classes=num_classes, global_pool="avg", fc_norm=True,
        embed_dim=arch.embed_dim, depth=arch.depth, num_heads=arch.num_heads,
        mlp_ratio=arch.mlp_ratio, drop_path_rate=drop_path,
    )


def load_export_into(
    model: VisionTransformer, path: str | os.PathLike, export: dict[str, Any] | None = None
) -> LoadReport:
    """Initialise ``model``'s encoder from an encoder export.

    Args:
        model: a classifier from :func:`build_classifier` with the export's architecture.
        path: the export file (for messages, and loading when ``export`` is None).
        export: the already loaded export dict, if any.

    Returns:
        A :class:`LoadReport` (missing keys are only ``head.*``/``fc_norm.*``).

    Raises:
        DamaUserError: channel count, patch size or any tensor shape differs, or
            encoder keys are missing from the export.
    """
    export = export if export is not None else load_encoder_export(path)
    state = dict(export["model"])
    model_state = model.state_dict()
    in_chans = model.patch_embed.proj.weight.shape[1]
    if int(export["in_chans"]) != in_chans:
        raise DamaUserError(
            f"{path}: encoder was pretrained on {export['in_chans']} channel(s) but the "
            f"data has {in_chans}"
        )
    patch = model.patch_embed.patch_size[0]
    if int(export["patch_size"]) != patch:
        raise DamaUserError(
            f"{path}: encoder patch size {export['patch_size']} differs from the "
            f"classifier's {patch}"
        )
    report = LoadReport(path=str(path), pretrain_epoch=export.get("epoch"),
                        pretrain_method=export.get("method"))
    if "pos_embed" in state and "pos_embed" in model_state:
        old_grid = _grid_of(state["pos_embed"], path)
        new_grid = list(model.patch_embed.grid_size)
        same_width = state["pos_embed"].shape[-1] == model_state["pos_embed"].shape[-1]
        if old_grid != new_grid and same_width:
            state["pos_embed"] = resample_abs_pos_embed(
                state["pos_embed"], new_size=new_grid, old_size=old_grid, num_prefix_tokens=1
            )
            report.pos_embed_resampled = (old_grid, new_grid)
    for key, value in state.items():
        if key in model_state and tuple(value.shape) != tuple(model_state[key].shape):
            raise DamaUserError(
                f"{path}: {key} has shape {tuple(value.shape)} in the export but "
                f"{tuple(model_state[key].shape)} in the classifier (architecture mismatch)"
            )
    result = model.load_state_dict(state, strict=False)
    report.missing_keys = list(result.missing_keys)
    report.unexpected_keys = list(result.unexpected_keys)
    lacking = [k for k in report.missing_keys if not k.startswith(ALLOWED_MISSING_PREFIXES)]
    if lacking:
        raise DamaUserError(
            f"{path}: export lacks encoder weight(s) {', '.join(lacking[:5])}"
            + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        )
    # MAE fine-tuning recipe: a near-zero head so the pretrained features lead at first.
    trunc_normal_(model.head.weight, std=2e-5)
    torch.nn.init.zeros_(model.head.bias)
    return report


def _grid_of(pos_embed: torch.Tensor, path: str | os.PathLike) -> list[int]:
    """Patch grid ``[gh, gw]`` of a ``(1, 1 + gh*gw, D)`` position embedding (square)."""
    n = pos_embed.shape[1] - 1
    side = int(round(n ** 0.5))
    if side * side != n:
        raise DamaUserError(f"{path}: pos_embed holds {n} patch positions, not a square grid")
    return [side, side]
