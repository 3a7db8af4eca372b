"""Frozen encoders for probing, and their features.

An encoder export (:mod:`dama_det.encoder_export.format`) is loaded into a timm
``VisionTransformer`` by the classifier's loader
(:func:`dama_det.classification.model.load_export_into`; the position embedding is
resampled when the probe's image size gives another patch grid). The control,
"random", is the untrained counterpart: the encoder of a freshly initialised
:class:`~dama_det.pretrain.models_mae.MaskedAutoencoderViT` of the same architecture
(its default weight init, fixed 2-D sin-cos position embedding), i.e. what
pretraining starts from, made into an in-memory export and loaded by the same loader.

Features are the encoder's own output, as its decoder sees it in pretraining: the
images (scaled to about [0, 1]) are standardised with the export's ``pixel_mean`` /
``pixel_std`` when it records them (as pretraining did), every token goes through the
blocks and the export's final ``norm`` (LayerNorm, weights from the export); the
patch tokens (the class token dropped) are the dense features; the pooled (crop-level)
feature is a mean of patch tokens, over every patch (``pool="mean"``) or over the patches
covering the image centre (``pool="centre"``, ``classification.model.centre_patch_mean``,
as the classifier's head reads them: for cell-centred crops, the cell the label names
rather than its neighbours). The random
counterpart of an export uses the export's standardisation, so only the weights differ.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..classification.model import (
    CLASSIFIER_POOLS,
    build_classifier,
    centre_patch_mean,
    load_export_into,
)
from ..encoder_export.format import ViTArch, make_encoder_export
from ..errors import DamaUserError

#: the ``source`` of an encoder built without weights.
RANDOM_SOURCE = "random"
#: crop-level readouts of the patch tokens (all of them, or the central ones): the classifier's.
POOLS = CLASSIFIER_POOLS


@dataclass
class EncoderInfo:
    """Where a probe encoder comes from and its architecture (JSON-ready via ``vars``)."""

    source: str
    method: str | None
    epoch: int | None
    img_size: int
    patch_size: int
    in_chans: int
    embed_dim: int
    depth: int
    num_heads: int
    seed: int | None = None
    pos_embed_resampled: bool = False
    pixel_mean: list[float] | None = None
    pixel_std: list[float] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(vars(self))


class ProbeEncoder(nn.Module):
    """A frozen ViT encoder returning pooled and patch features.

    Args:
        vit: timm ``VisionTransformer`` (from :func:`build_classifier`; its own
            ``norm`` is an identity, its head and ``fc_norm`` are unused).
        norm: the export's final LayerNorm, applied to every output token.
        info: provenance and architecture; ``info.pixel_mean`` / ``pixel_std`` (one
            value per channel, or None) standardise the input.
        pool: the pooled feature: ``"mean"`` of every patch token or of the
            ``"centre"`` patches (``classification.model.centre_patch_grid``).
    """

    def __init__(self, vit: nn.Module, norm: nn.LayerNorm, info: EncoderInfo,
                 pool: str = "mean"):
        super().__init__()
        if pool not in POOLS:
            raise DamaUserError(f"unknown probe pooling {pool!r}; choose one of {', '.join(POOLS)}")
        self.vit = vit
        self.norm = norm
        self.info = info
        self.pool = pool
        c = int(info.in_chans)
        mean = info.pixel_mean if info.pixel_mean is not None else [0.0] * c
        std = info.pixel_std if info.pixel_std is not None else [1.0] * c
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def embed_dim(self) -> int:
        """Feature width ``D``."""
        return int(self.info.embed_dim)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid ``(gh, gw)`` of an ``img_size`` input."""
        gh, gw = self.vit.patch_embed.grid_size
        return int(gh), int(gw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode images.

        Args:
            x: ``(N, C, S, S)`` images scaled to about [0, 1], ``S = img_size``.

        Returns:
            ``(pooled (N, D), patches (N, L, D))``: ``patches`` are the normed patch
            tokens in row-major grid order (``L = gh * gw``), ``pooled`` the mean of
            all of them (``pool="mean"``) or of the central ones (``"centre"``).
        """
        if self.info.pixel_mean is not None:
            x = (x - self.pixel_mean) / self.pixel_std
        tokens = self.vit.forward_features(x)  # (N, prefix + L, D); vit.norm is identity
        patches = self.norm(tokens[:, self.vit.num_prefix_tokens:])
        if self.pool == "mean":
            return patches.mean(dim=1), patches
        return centre_patch_mean(patches, *self.grid_size), patches


def random_export(
    *,
    img_size: int,
    patch_size: int,
    in_chans: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    seed: int = 0,
    pixel_mean: Sequence[float] | None = None,
    pixel_std: Sequence[float] | None = None,
) -> dict[str, Any]:
    """An in-memory encoder export of an untrained MAE encoder (the pretraining start).

    The global RNG state is left untouched (the weights come from a forked RNG
    seeded with ``seed``), so the same seed gives the same weights. ``pixel_mean`` /
    ``pixel_std`` (one value per channel) record an input standardisation.

    Returns:
        A dict in the :mod:`dama_det.encoder_export.format` format, ``method="random"``,
        ``epoch=0``.

    Raises:
        DamaUserError: an invalid architecture (e.g. width not divisible by heads).
    """
    from ..pretrain.models_mae import MAEConfig, MaskedAutoencoderViT

    cfg = MAEConfig(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                    embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                    decoder_embed_dim=embed_dim, decoder_depth=0, decoder_num_heads=num_heads,
                    mlp_ratio=mlp_ratio)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mae = MaskedAutoencoderViT(cfg)
    return make_encoder_export(
        mae.encoder_state_dict(), img_size=img_size, patch_size=patch_size, in_chans=in_chans,
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
        method=RANDOM_SOURCE, epoch=0, pixel_mean=pixel_mean, pixel_std=pixel_std)


def random_export_like(export: Mapping[str, Any], *, in_chans: int | None = None,
                       seed: int = 0) -> dict[str, Any]:
    """The untrained counterpart of ``export``: same architecture and input
    standardisation, random MAE init."""
    return random_export(
        img_size=int(export["img_size"]), patch_size=int(export["patch_size"]),
        in_chans=int(in_chans if in_chans is not None else export["in_chans"]),
        embed_dim=int(export["embed_dim"]), depth=int(export["depth"]),
        num_heads=int(export["num_heads"]), mlp_ratio=float(export.get("mlp_ratio", 4.0)),
        seed=seed, pixel_mean=export.get("pixel_mean"), pixel_std=export.get("pixel_std"),
    )


def random_export_of_size(size: str, *, img_size: int, in_chans: int, patch_size: int = 16,
                          seed: int = 0, pixel_mean: Sequence[float] | None = None,
                          pixel_std: Sequence[float] | None = None) -> dict[str, Any]:
    """An untrained encoder of a named pretraining size (``test``, ``mini``, ``tiny``...).

    Raises:
        DamaUserError: unknown size name or image size not divisible by the patch size.
    """
    from ..pretrain.models_mae import mae_config

    cfg = mae_config(size, img_size=img_size, patch_size=patch_size, in_chans=in_chans)
    return random_export(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                         embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                         mlp_ratio=cfg.mlp_ratio, seed=seed, pixel_mean=pixel_mean,
                         pixel_std=pixel_std)


def build_probe_encoder(
    export: Mapping[str, Any],
    *,
    name: str,
    img_size: int | None = None,
    seed: int | None = None,
    pool: str = "mean",
) -> ProbeEncoder:
    """Load an encoder export into a frozen :class:`ProbeEncoder`.

    Args:
        export: an export dict (:func:`~dama_det.encoder_export.format.read_encoder_export`,
            :func:`random_export`...).
        name: file name or label of the export (messages and ``info.source``).
        img_size: input side the probe will use (default: the export's); the position
            embedding is resampled when the grid differs.
        seed: the seed of a random export, recorded in ``info``.
        pool: the pooled feature, ``"mean"`` or ``"centre"`` (:class:`ProbeEncoder`).

    Returns:
        The encoder, in eval mode, without gradients, on CPU.

    Raises:
        DamaUserError: ``img_size`` not a multiple of the patch size, the export
            does not fit its own architecture, or its pixel statistics do not have one
            value per channel, or ``pool`` is unknown.
    """
    arch = ViTArch.from_export(export)
    size = int(img_size if img_size is not None else export["img_size"])
    in_chans = int(export["in_chans"])
    vit = build_classifier(arch, img_size=size, in_chans=in_chans, num_classes=1)
    report = load_export_into(vit, name, export=dict(export))
    norm = nn.LayerNorm(arch.embed_dim, eps=1e-6)
    state = export["model"]
    notes = []
    if "norm.weight" in state and "norm.bias" in state:
        norm.load_state_dict({"weight": state["norm.weight"], "bias": state["norm.bias"]})
    else:
        notes.append("export has no final norm; using an identity-affine LayerNorm")
    stats = [export.get("pixel_mean"), export.get("pixel_std")]
    if (stats[0] is None) != (stats[1] is None) or any(
            s is not None and len(s) != in_chans for s in stats):
        raise DamaUserError(f"{name}: pixel_mean/pixel_std need {in_chans} value(s) each "
                            f"(got {stats[0]!r}, {stats[1]!r})")
    random = export.get("method") == RANDOM_SOURCE and name == RANDOM_SOURCE
    info = EncoderInfo(
        source=RANDOM_SOURCE if random else name, method=export.get("method"),
        epoch=export.get("epoch"), img_size=size, patch_size=arch.patch_size,
        in_chans=in_chans, embed_dim=arch.embed_dim, depth=arch.depth,
        num_heads=arch.num_heads, seed=seed if random else None,
        pos_embed_resampled=report.resampled_pos_embed is not None,
        pixel_mean=[float(v) for v in stats[0]] if stats[0] is not None else None,
        pixel_std=[float(v) for v in stats[1]] if stats[1] is not None else None,
        notes=notes,
    )
    return ProbeEncoder(vit, norm, info, pool=pool)


def extract_features(
    model: ProbeEncoder,
    images: torch.Tensor | Sequence[torch.Tensor] | torch.utils.data.Dataset,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    keep_patches: bool = True,
    progress: bool = False,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a frozen encoder over images in batches, without gradients.

    Args:
        model: the encoder (moved to ``device``).
        images: ``(N, C, S, S)`` tensor, or a dataset/sequence whose items are
            ``(C, S, S)`` tensors (read lazily, one batch at a time).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
        amp_dtype: autocast dtype (e.g. ``torch.bfloat16``), None for full precision.
        keep_patches: also return the patch tokens (memory ``N * L * D`` floats).
        progress: show a tqdm bar.
        desc: the bar's label.

    Returns:
        ``(pooled (N, D), patches (N, L, D) or None)``, float32 on CPU.
    """
    from tqdm.auto import tqdm

    from ..utils.device import autocast_context

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(dev).eval()
    n = len(images)
    if isinstance(images, torch.Tensor):
        batches = (images[i:i + batch_size] for i in range(0, n, batch_size))
    else:
        loader = torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=False,
                                             num_workers=0)
        batches = iter(loader)
    pooled_out: list[torch.Tensor] = []
    patch_out: list[torch.Tensor] = []
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
    with torch.inference_mode():
        for batch in batches:
            x = batch.to(dev, dtype=torch.float32, non_blocking=True)
            with autocast_context(dev, amp_dtype):
                pooled, patches = model(x)
            pooled_out.append(pooled.float().cpu())
            if keep_patches:
                patch_out.append(patches.float().cpu())
            bar.update(len(x))
    bar.close()
    d = model.embed_dim
    pooled_all = torch.cat(pooled_out) if pooled_out else torch.zeros(0, d)
    if not keep_patches:
        return pooled_all, None
    gh, gw = model.grid_size
    patches_all = torch.cat(patch_out) if patch_out else torch.zeros(0, gh * gw, d)
    return pooled_all, patches_all
