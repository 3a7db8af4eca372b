"""The ViT classifier and its initialisation from a pretraining export.

The classifier is timm's ``VisionTransformer`` with global average pooling over the
patch tokens followed by ``fc_norm`` (``global_pool="avg"``; the final ``norm`` is
then an identity), as in MAE/DAMA fine-tuning (``pool="mean"``), or with the average of
the patch tokens over the image centre instead (``pool="centre"``,
:class:`CentrePooledViT`: a cell-centred crop's label is the cell at its centre).
An encoder export (see :mod:`dama_det.encoder_export.format`) holds the same key
names, so loading it leaves only ``head.*`` and ``fc_norm.*`` missing and ``norm.*``
unexpected (:data:`~dama_det.encoder_export.loading.CLASSIFIER_KEYS`). The position
embedding is resampled when the fine-tuning image size gives another patch grid than
pretraining.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from ..encoder_export.format import ViTArch, load_encoder_export
from ..encoder_export.loading import CLASSIFIER_KEYS, EncoderLoadReport, prepare_encoder_state
from ..encoder_export.sizes import CLASSIFIER_POOLS
from ..errors import DamaUserError

__all__ = ["CLASSIFIER_POOLS", "CentrePooledViT", "ViTArch", "build_classifier",
           "centre_patch_grid", "centre_patch_mean", "check_sincos_width", "load_export_into",
           "start_from_sincos_positions"]


def centre_patch_grid(gh: int, gw: int) -> tuple[slice, slice]:
    """Rows and columns of the patches that cover the centre of a ``(gh, gw)`` grid.

    The two middle rows (columns) for an even side, the middle one for an odd side:
    2 x 2 patches on the 8 x 8 grid of a 128 px crop with 16 px patches, the patch
    under the centre pixel on a 7 x 7 grid.

    Returns:
        ``(rows, cols)`` slices into the grid.
    """
    def middle(n: int) -> slice:
        return slice(n // 2 - 1, n // 2 + 1) if n % 2 == 0 else slice(n // 2, n // 2 + 1)

    return middle(int(gh)), middle(int(gw))


def centre_patch_mean(patches: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """The mean of the patch tokens :func:`centre_patch_grid` names.

    Args:
        patches: ``(N, gh * gw, D)`` patch tokens in row-major grid order (no prefix).
        gh, gw: the patch grid.

    Returns:
        ``(N, D)``.
    """
    rows, cols = centre_patch_grid(gh, gw)
    grid = patches.reshape(len(patches), int(gh), int(gw), patches.shape[-1])
    return grid[:, rows, cols].mean(dim=(1, 2))


class CentrePooledViT(VisionTransformer):
    """timm's ViT classifier whose head reads the mean of the central patch tokens.

    The tokens are those :func:`centre_patch_grid` names (the ones ``dama-det probe
    --pool centre`` reads), followed by ``fc_norm`` and the head as with average
    pooling. Weights and their names are the average-pooled model's, so exports load
    the same way and a saved state dict fits either.
    """

    def pool(self, x: torch.Tensor, pool_type: str | None = None) -> torch.Tensor:
        """``(N, prefix + gh * gw, D)`` tokens -> ``(N, D)``: the central patches' mean."""
        if pool_type is not None:
            return super().pool(x, pool_type)
        return centre_patch_mean(x[:, self.num_prefix_tokens:], *self.patch_embed.grid_size)


def build_classifier(
    arch: ViTArch, *, img_size: int, in_chans: int, num_classes: int, drop_path: float = 0.0,
    pool: str = "mean",
) -> VisionTransformer:
    """A randomly initialised ViT classifier (pooling + fc_norm + linear head).

    Args:
        arch: encoder architecture.
        img_size: input side length (multiple of ``arch.patch_size``).
        in_chans: input channels.
        num_classes: output classes.
        drop_path: stochastic depth rate.
        pool: ``"mean"`` (global average pooling of the patch tokens, MAE's) or
            ``"centre"`` (:class:`CentrePooledViT`).

    Returns:
        The model; ``model(x)`` maps ``(N, C, S, S)`` to logits ``(N, num_classes)``.

    Raises:
        DamaUserError: the size does not fit the patches or heads, or an unknown pool.
    """
    if pool not in CLASSIFIER_POOLS:
        raise DamaUserError(f"pool {pool!r} is not one of {', '.join(CLASSIFIER_POOLS)}")
    if img_size % arch.patch_size:
        raise DamaUserError(
            f"image size {img_size} is not a multiple of the patch size {arch.patch_size}; "
            "choose another --img-size"
        )
    if arch.embed_dim % arch.num_heads:
        raise DamaUserError(
            f"embed dim {arch.embed_dim} is not divisible by {arch.num_heads} heads"
        )
    cls = CentrePooledViT if pool == "centre" else VisionTransformer
    return cls(
        img_size=img_size, patch_size=arch.patch_size, in_chans=in_chans,
        num_classes=num_classes, global_pool="avg", fc_norm=True,
        embed_dim=arch.embed_dim, depth=arch.depth, num_heads=arch.num_heads,
        mlp_ratio=arch.mlp_ratio, drop_path_rate=drop_path,
    )


def check_sincos_width(width: int) -> None:
    """Refuse a random-init width ``D`` that a 2-D sin-cos position table cannot fill.

    Raises:
        DamaUserError: ``D`` is not divisible by 4.
    """
    if width % 4:
        raise DamaUserError(
            f"random init's width {width} is not divisible by 4, which the 2-D sin-cos "
            "position table needs; choose another --embed-dim or --random-pos-embed "
            "trunc_normal")


def start_from_sincos_positions(model: VisionTransformer) -> None:
    """Set ``model.pos_embed`` to the 2-D sin-cos table of its patch grid, in place.

    The table is the one pretraining fixes (zeros for the class token), so a randomly
    initialised classifier starts with the positions an export would bring; the table
    stays learnable. ``pos_embed`` is ``(1, 1 + gh * gw, D)``.

    Raises:
        DamaUserError: ``D`` is not divisible by 4 (a 2-D sin-cos table needs it).
    """
    from ..pretrain.models_mae import sincos_pos_embed

    width = model.pos_embed.shape[-1]
    check_sincos_width(width)
    with torch.no_grad():
        model.pos_embed.copy_(sincos_pos_embed(tuple(model.patch_embed.grid_size), width))


def load_export_into(
    model: VisionTransformer, path: str | os.PathLike, export: dict[str, Any] | None = None
) -> EncoderLoadReport:
    """Initialise ``model``'s encoder from an encoder export.

    Args:
        model: a classifier from :func:`build_classifier` with the export's architecture.
        path: the export file (for messages, and loading when ``export`` is None).
        export: the already loaded export dict, if any.

    Returns:
        The load report (``missing_keys`` are only ``head.*``/``fc_norm.*``).

    Raises:
        DamaUserError: channel count, patch size or any tensor shape differs, or
            encoder keys are missing from the export.
    """
    export = export if export is not None else load_encoder_export(path)
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
    grid_h, grid_w = model.patch_embed.grid_size
    state, report = prepare_encoder_state(
        export, model.state_dict(), CLASSIFIER_KEYS,
        model_has_cls=model.pos_embed.shape[1] > grid_h * grid_w, what=str(path))
    if report.mismatched:
        bad = report.mismatched[0]
        raise DamaUserError(
            f"{path}: {bad.key} has shape {bad.export_shape} in the export but "
            f"{bad.model_shape} in the classifier (architecture mismatch)"
        )
    if report.missing:
        lacking = report.missing
        raise DamaUserError(
            f"{path}: export lacks encoder weight(s) {', '.join(lacking[:5])}"
            + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        )
    model.load_state_dict(state, strict=False)
    # MAE fine-tuning recipe: a near-zero head so the pretrained features lead at first.
    trunc_normal_(model.head.weight, std=2e-5)
    torch.nn.init.zeros_(model.head.bias)
    return report
