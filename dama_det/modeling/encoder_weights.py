"""Load a pretraining encoder export (timm ``VisionTransformer`` key names) into
Detectron2's ViTDet ``ViT``.

Key mapping. Detectron2's ViT uses the same module names as timm for everything the
two share: ``patch_embed.proj.*``, ``pos_embed``, ``blocks.{i}.norm1/norm2.*``,
``blocks.{i}.attn.qkv/proj.*``, ``blocks.{i}.mlp.fc1/fc2.*``. It has no cls token in
use and no final norm, so the export's ``cls_token`` and ``norm.*`` are reported as
unused; ``rel_pos_h/rel_pos_w`` (relative position bias, zero-initialised) do not
exist in MAE-style pretraining and are reported as newly initialised.

Position embedding. The ViT stores ``pos_embed`` on the grid
``MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE / patch`` (0 = the export's ``img_size``, resolved when
the config is set up; with a leading cls entry when
``PRETRAIN_USE_CLS_TOKEN``), and Detectron2's ``get_abs_pos`` bicubically resizes
it to every input's token grid at forward time - so any detection or tile size
works. When the export's grid (``img_size / patch_size``) differs from the model's
stored grid, the export's ``pos_embed`` is resampled once at load time with timm's
``resample_abs_pos_embed`` (bicubic, antialiased). With the defaults (pretraining and
``PRETRAIN_IMG_SIZE`` both 128) nothing is resampled and the weights load exactly.

Any encoder weight that cannot be loaded (absent from the export, or of another shape
- e.g. a different ``in_chans``, ``embed_dim`` or depth) raises ``DamaUserError``:
silently dropping pretrained weights is the failure the paper warns about.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..errors import DamaUserError
from ..pretrain.export import load_encoder_export

logger = logging.getLogger(__name__)

__all__ = ["EncoderLoadReport", "convert_timm_to_vitdet", "load_encoder_into_vit"]

# Export keys with no counterpart in Detectron2's ViT (unused by design).
_UNUSED_EXPORT_KEYS = re.compile(r"^(cls_token|reg_token|norm\.|fc_norm\.|head\.|head_drop\.)")
# ViT parameters that MAE-style pretraining does not provide (initialised fresh).
_NEW_MODEL_KEYS = re.compile(r"(^|\.)rel_pos_[hw]$")


@dataclass
class EncoderLoadReport:
    """What happened when an export was loaded into a ViT."""

    loaded: list[str] = field(default_factory=list)  # ViT keys set from the export
    missing: list[str] = field(default_factory=list)  # ViT keys the export lacks (error)
    new: list[str] = field(default_factory=list)  # ViT keys not pretrained (rel pos)
    unused: list[str] = field(default_factory=list)  # export keys with no ViT counterpart
    unexpected: list[str] = field(default_factory=list)  # export keys that should match (error)
    mismatched: list[str] = field(default_factory=list)  # "key: export shape vs model shape"
    kept_init: list[str] = field(default_factory=list)  # export keys skipped on request
    resampled_pos_embed: tuple[tuple[int, int], tuple[int, int]] | None = None  # (old, new) grid

    def summary(self) -> str:
        """A multi-line human-readable report."""
        lines = [f"loaded {len(self.loaded)} encoder tensors"]
        if self.resampled_pos_embed:
            old, new = self.resampled_pos_embed
            lines.append(f"pos_embed resampled from grid {old} to {new}")
        for title, keys in (
            ("not in pretraining, freshly initialised", self.new),
            ("skipped on request (MODEL.DAMA_VIT.ENCODER_SKIP_KEYS), kept at init",
             self.kept_init),
            ("in export but unused by detectron2's ViT", self.unused),
            ("MISSING from export", self.missing),
            ("UNEXPECTED in export", self.unexpected),
            ("SHAPE MISMATCH", self.mismatched),
        ):
            if keys:
                lines.append(f"{title} ({len(keys)}): {', '.join(keys)}")
        return "\n".join(lines)


def _grid(num_tokens: int, what: str) -> tuple[int, int]:
    side = int(round(num_tokens**0.5))
    if side * side != num_tokens:
        raise DamaUserError(f"{what}: pos_embed has {num_tokens} patch tokens, not a square grid")
    return side, side


def _convert_pos_embed(
    src: torch.Tensor, src_has_cls: bool, target: torch.Tensor, target_has_cls: bool, what: str
) -> tuple[torch.Tensor, tuple[tuple[int, int], tuple[int, int]] | None]:
    """Fit an export ``pos_embed`` (1, [1+]L, D) to the model's stored ``pos_embed``."""
    from timm.layers import resample_abs_pos_embed

    if src.shape[-1] != target.shape[-1]:
        return src, None  # embed_dim mismatch: reported by the caller
    n_src = src.shape[1] - int(src_has_cls)
    n_tgt = target.shape[1] - int(target_has_cls)
    old, new = _grid(n_src, what), _grid(n_tgt, "model")
    cls = src[:, :1] if src_has_cls else src.new_zeros(1, 1, src.shape[-1])
    patch = src[:, int(src_has_cls) :]
    resampled = None
    if old != new:
        patch = resample_abs_pos_embed(
            patch.float(), new_size=list(new), old_size=list(old), num_prefix_tokens=0
        ).to(src.dtype)
        resampled = (old, new)
    out = torch.cat([cls, patch], dim=1) if target_has_cls else patch
    return out, resampled


def convert_timm_to_vitdet(
    export_state: Mapping[str, torch.Tensor],
    vit: nn.Module,
    *,
    export_has_cls: bool = True,
    what: str = "encoder export",
) -> tuple[dict[str, torch.Tensor], EncoderLoadReport]:
    """Map timm ViT weights onto a Detectron2 ViT's state-dict keys.

    Args:
        export_state: encoder state dict in timm names (``pos_embed`` ``(1, [1+]L, D)``).
        vit: the Detectron2 ``ViT`` to load into (only its shapes are read).
        export_has_cls: whether the export's ``pos_embed`` starts with a cls entry.
        what: name of the source, for messages.

    Returns:
        ``(state, report)``: tensors to load (ViT key names, ViT shapes) and a report
        whose ``missing``/``unexpected``/``mismatched`` lists are non-empty on problems.
    """
    target = vit.state_dict()
    report = EncoderLoadReport()
    out: dict[str, torch.Tensor] = {}
    for key, value in export_state.items():
        if key not in target:
            unused = _UNUSED_EXPORT_KEYS.match(key) or (key == "pos_embed" and vit.pos_embed is None)
            (report.unused if unused else report.unexpected).append(key)
            continue
        if key == "pos_embed":
            value, report.resampled_pos_embed = _convert_pos_embed(
                value, export_has_cls, target[key], bool(vit.pretrain_use_cls_token), what
            )
        if tuple(value.shape) != tuple(target[key].shape):
            report.mismatched.append(
                f"{key}: export {tuple(value.shape)} vs model {tuple(target[key].shape)}"
            )
            continue
        out[key] = value.to(target[key].dtype)
        report.loaded.append(key)
    for key in target:
        if key in out or any(m.startswith(key + ":") for m in report.mismatched):
            continue
        (report.new if _NEW_MODEL_KEYS.search(key) else report.missing).append(key)
    return out, report


def load_encoder_into_vit(
    vit: nn.Module, export: str | os.PathLike | Mapping[str, Any], skip: Sequence[str] = ()
) -> EncoderLoadReport:
    """Load a pretraining export into a Detectron2 ``ViT`` in place.

    Args:
        vit: Detectron2 ``ViT`` (e.g. ``backbone.net`` of the detection backbone).
        export: path of an export file (``dama_det.pretrain.export`` format) or an
            already loaded export dict.
        skip: ViT keys, or ``fnmatch`` patterns of them, not loaded from the export but
            kept at the ViT's own initialisation (e.g. ``["pos_embed"]``: detectron2's
            trunc-normal(0.02) instead of the export's sin-cos table; ``["blocks.*"]``:
            only the patch embedding and position table come from the export).

    Returns:
        The load report (also logged).

    Raises:
        DamaUserError: unreadable export, a patch size / shape mismatch, encoder
            weights missing from the export, or export weights with no place in the ViT.
    """
    if isinstance(export, Mapping):
        obj, what = export, "encoder export"
    else:
        obj, what = load_encoder_export(export), str(export)
    patch = vit.patch_embed.proj.kernel_size[0]
    if int(obj["patch_size"]) != patch:
        raise DamaUserError(
            f"{what}: patch_size {obj['patch_size']} differs from MODEL.DAMA_VIT.PATCH_SIZE={patch}"
        )
    grid = int(obj["img_size"]) // int(obj["patch_size"])
    n_pos = obj["model"]["pos_embed"].shape[1] if "pos_embed" in obj["model"] else grid * grid
    export_has_cls = n_pos == grid * grid + 1
    state, report = convert_timm_to_vitdet(
        obj["model"], vit, export_has_cls=export_has_cls, what=what
    )
    vit_keys = list(vit.state_dict())
    unknown = [pattern for pattern in skip if not fnmatch.filter(vit_keys, pattern)]
    if unknown:
        raise DamaUserError(f"MODEL.DAMA_VIT.ENCODER_SKIP_KEYS: {', '.join(unknown)} "
                            "matches no key of the ViT (e.g. pos_embed, patch_embed.*, "
                            "blocks.*.attn.qkv.weight)")
    for key in [k for k in state if any(fnmatch.fnmatchcase(k, p) for p in skip)]:
        del state[key]
        report.loaded.remove(key)
        report.kept_init.append(key)
    problems = report.mismatched + [f"{k} (missing)" for k in report.missing]
    problems += [f"{k} (unexpected)" for k in report.unexpected]
    if problems:
        raise DamaUserError(
            f"{what}: {len(problems)} encoder weight(s) cannot be loaded into the ViT "
            f"({'; '.join(problems[:6])}{' ...' if len(problems) > 6 else ''}). The export is "
            f"{_describe_export(obj)}; make MODEL.DAMA_VIT (EMBED_DIM, DEPTH, NUM_HEADS, "
            "PATCH_SIZE) and the channel count (len(MODEL.PIXEL_MEAN)) match it"
        )
    vit.load_state_dict(state, strict=False)
    logger.info("Encoder weights from %s:\n%s", what, report.summary())
    return report


def _describe_export(obj: Mapping[str, Any]) -> str:
    """Describe an export's architecture, e.g. ``in_chans=7 embed_dim=192 depth=12``."""
    keys = ("in_chans", "embed_dim", "depth", "num_heads", "patch_size", "img_size")
    return " ".join(f"{k}={obj.get(k)}" for k in keys)
