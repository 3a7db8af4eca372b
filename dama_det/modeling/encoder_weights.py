"""Load a pretraining encoder export (timm ``VisionTransformer`` key names) into
Detectron2's ViTDet ``ViT``.

The key mapping, position-embedding resampling and the report are
:mod:`dama_det.encoder_export.loading`'s (with :data:`VITDET_KEYS`: the export's
``cls_token`` and ``norm.*`` are unused, ``rel_pos_h/rel_pos_w`` are new). This module
adds what is particular to detection: the patch size of ``MODEL.DAMA_VIT``, keys kept at
detectron2's initialisation on request (``MODEL.DAMA_VIT.ENCODER_SKIP_KEYS``), and the
error policy.

Position embedding. The ViT stores ``pos_embed`` on the grid
``MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE / patch`` (0 = the export's ``img_size``, resolved when
the config is set up; with a leading cls entry when
``PRETRAIN_USE_CLS_TOKEN``), and Detectron2's ``get_abs_pos`` bicubically resizes
it to every input's token grid at forward time - so any detection or tile size
works. When the export's grid (``img_size / patch_size``) differs from the model's
stored grid, the export's ``pos_embed`` is resampled once at load time. With the
defaults (pretraining and ``PRETRAIN_IMG_SIZE`` both 128) nothing is resampled and the
weights load exactly.

Any encoder weight that cannot be loaded (absent from the export, or of another shape
- e.g. a different ``in_chans``, ``embed_dim`` or depth) raises ``DamaUserError``:
silently dropping pretrained weights is the failure the paper warns about.
"""
from __future__ import annotations

import fnmatch
import logging
from typing import Mapping, Sequence

import torch
from torch import nn

from ..encoder_export.format import ExportSource, describe_export, read_encoder_export
from ..encoder_export.loading import (
    VITDET_KEYS,
    EncoderLoadReport,
    map_encoder_state,
    prepare_encoder_state,
)
from ..errors import DamaUserError

logger = logging.getLogger(__name__)

__all__ = ["EncoderLoadReport", "convert_timm_to_vitdet", "load_encoder_into_vit"]

#: the config key that names the ViT keys kept at initialisation.
SKIP_OPTION = "MODEL.DAMA_VIT.ENCODER_SKIP_KEYS"


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
    return map_encoder_state(export_state, vit.state_dict(), VITDET_KEYS,
                             export_has_cls=export_has_cls,
                             model_has_cls=bool(vit.pretrain_use_cls_token), what=what)


def load_encoder_into_vit(
    vit: nn.Module, export: ExportSource, skip: Sequence[str] = ()
) -> EncoderLoadReport:
    """Load a pretraining export into a Detectron2 ``ViT`` in place.

    Args:
        vit: Detectron2 ``ViT`` (e.g. ``backbone.net`` of the detection backbone).
        export: path of an export file (:mod:`dama_det.encoder_export.format`) or an
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
    obj, what = read_encoder_export(export)
    patch = vit.patch_embed.proj.kernel_size[0]
    if int(obj["patch_size"]) != patch:
        raise DamaUserError(
            f"{what}: patch_size {obj['patch_size']} differs from MODEL.DAMA_VIT.PATCH_SIZE={patch}"
        )
    state, report = prepare_encoder_state(
        obj, vit.state_dict(), VITDET_KEYS, model_has_cls=bool(vit.pretrain_use_cls_token),
        what=what)
    _keep_at_init(state, report, skip, list(vit.state_dict()))
    problems = [str(m) for m in report.mismatched] + [f"{k} (missing)" for k in report.missing]
    problems += [f"{k} (unexpected)" for k in report.unexpected]
    if problems:
        raise DamaUserError(
            f"{what}: {len(problems)} encoder weight(s) cannot be loaded into the ViT "
            f"({'; '.join(problems[:6])}{' ...' if len(problems) > 6 else ''}). The export is "
            f"{describe_export(obj)}; make MODEL.DAMA_VIT (EMBED_DIM, DEPTH, NUM_HEADS, "
            "PATCH_SIZE) and the channel count (len(MODEL.PIXEL_MEAN)) match it"
        )
    vit.load_state_dict(state, strict=False)
    logger.info("Encoder weights from %s:\n%s", what, report.summary())
    return report


def _keep_at_init(state: dict[str, torch.Tensor], report: EncoderLoadReport,
                  skip: Sequence[str], vit_keys: list[str]) -> None:
    """Drop the keys matching ``skip`` from ``state`` (in place), moving them from
    ``report.loaded`` to ``report.kept_init``.

    Raises:
        DamaUserError: a pattern that matches no key of the ViT.
    """
    unknown = [pattern for pattern in skip if not fnmatch.filter(vit_keys, pattern)]
    if unknown:
        raise DamaUserError(f"{SKIP_OPTION}: {', '.join(unknown)} "
                            "matches no key of the ViT (e.g. pos_embed, patch_embed.*, "
                            "blocks.*.attn.qkv.weight)")
    report.skip_option = SKIP_OPTION
    for key in [k for k in state if any(fnmatch.fnmatchcase(k, p) for p in skip)]:
        del state[key]
        report.loaded.remove(key)
        report.kept_init.append(key)
