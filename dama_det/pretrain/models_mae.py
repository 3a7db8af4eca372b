"""Masked autoencoder ViT for N-channel images (one DAMA "student").

The encoder is built from timm's ``PatchEmbed`` and ``Block`` (which use PyTorch's
``scaled_dot_product_attention``) and its parameters carry timm
``VisionTransformer`` key names (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.{i}.*``, ``norm.*``), so the encoder export is a plain slice of the
``state_dict``. Position embeddings are fixed 2-D sin-cos (not trained). The decoder
(``decoder_*``, ``mask_token``) is lightweight and only used for pretraining.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
from timm.layers import PatchEmbed, build_sincos2d_pos_embed
from timm.models.vision_transformer import Block

from ..encoder_export.format import ENCODER_KEY_PREFIXES
from ..encoder_export.sizes import WEIGHT_INITS, model_size
from ..errors import DamaUserError
from ..utils.device import active_autocast_dtype
from .losses import normalize_patches, patchify, reconstruction_loss


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of one masked autoencoder."""

    img_size: int = 128
    patch_size: int = 16
    in_chans: int = 7
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_pix_loss: bool = True
    pixel_mean: tuple[float, ...] | None = None  # input standardisation (None: images as scaled)
    pixel_std: tuple[float, ...] | None = None
    # Linear weights: "xavier_small_residual" (MAE's, the encoder blocks' attn.proj/mlp.fc2
    # at std 0.02; floor study F16), "xavier" (MAE) or "trunc_normal" (timm/detectron2)
    weight_init: str = "xavier_small_residual"

    def to_dict(self) -> dict:
        return asdict(self)


def mae_config(size: str = "tiny", **overrides) -> MAEConfig:
    """Config of a named size (``test``/``mini``/``tiny``/``small``/``base``, see
    :data:`dama_det.encoder_export.sizes.MODEL_SIZES`) with overrides.

    Raises:
        DamaUserError: unknown size or image size not divisible by the patch size.
    """
    cfg = replace(MAEConfig(**model_size(size).autoencoder()),
                  **{k: v for k, v in overrides.items() if v is not None})
    validate_config(cfg)
    return cfg


def validate_config(cfg: MAEConfig) -> None:
    """Check an architecture for user mistakes (one clear message each)."""
    if cfg.patch_size < 1 or cfg.img_size < cfg.patch_size or cfg.img_size % cfg.patch_size:
        raise DamaUserError(
            f"image size {cfg.img_size} is not divisible by patch size {cfg.patch_size}"
        )
    if cfg.weight_init not in WEIGHT_INITS:
        raise DamaUserError(
            f"weight init {cfg.weight_init!r} is not one of {', '.join(WEIGHT_INITS)}")
    if cfg.in_chans < 1:
        raise DamaUserError(f"--in-chans must be >= 1, got {cfg.in_chans}")
    for dim, heads, what in ((cfg.embed_dim, cfg.num_heads, "encoder"),
                             (cfg.decoder_embed_dim, cfg.decoder_num_heads, "decoder")):
        if dim % heads:
            raise DamaUserError(f"{what} width {dim} is not divisible by its {heads} heads")
        if dim % 4:
            raise DamaUserError(
                f"{what} width {dim} must be divisible by 4 (2-D sin-cos embedding)")


def sincos_pos_embed(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding with a zero row for the cls token.

    Returns:
        ``(1, 1 + gh * gw, dim)``.
    """
    pe = build_sincos2d_pos_embed(list(grid), dim=dim)
    return torch.cat([torch.zeros(1, dim), pe], dim=0).unsqueeze(0)


def autocast_stream(x: torch.Tensor) -> torch.Tensor:
    """The token stream ``x`` ``(N, T, D)`` in autocast's dtype while autocast is on for
    its device, else unchanged.

    Autocast runs the matmuls in bf16 but leaves everything else in its input's dtype; a
    residual stream started in fp32 (patch embedding + fp32 position embedding) therefore
    stays fp32, so every linear layer casts its LayerNorm input down and every residual add
    casts the branch back up. Starting the stream in bf16 removes those casts (a ViT-tiny
    DAMA step: 2092 -> 1770 ``aten::copy_`` calls) and runs LayerNorm and GELU in bf16;
    the step is 1.03x as fast on a bf16 CPU (BENCHMARKS.md, "Pretraining step profile").
    Parameters stay fp32 (autocast casts the weights per step) and the losses are
    computed in fp32.
    """
    dtype = active_autocast_dtype(x.device.type)
    return x if dtype is None else x.to(dtype)


def block_forward_with_ffn(block: Block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a timm ``Block`` and also return its feed-forward output.

    Args:
        block: a ``timm.models.vision_transformer.Block``.
        x: ``(N, T, D)``.

    Returns:
        ``(block output, feed-forward branch output before the residual add)``.
    """
    x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
    ffn = block.ls2(block.mlp(block.norm2(x)))
    return x + block.drop_path2(ffn), ffn


class MaskedAutoencoderViT(nn.Module):
    """ViT masked autoencoder for ``(N, C, H, W)`` images with any channel count.

    Args:
        cfg: the architecture.
    """

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        validate_config(cfg)
        self.cfg = cfg
        d, dd = cfg.embed_dim, cfg.decoder_embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, d)
        grid = tuple(self.patch_embed.grid_size)
        self.grid_size = grid
        self.num_patches = grid[0] * grid[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(sincos_pos_embed(grid, d), requires_grad=False)
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
            for _ in range(cfg.depth)
        )
        self.norm = _layer_norm(d)

        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(grid, dd), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dd, cfg.decoder_num_heads, cfg.mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
            for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = _layer_norm(dd)
        self.decoder_pred = nn.Linear(dd, cfg.patch_size**2 * cfg.in_chans)
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's init (``weight_init="xavier"``), timm's ViT init (``"trunc_normal"``), or
        MAE's with small residual outputs in the encoder (``"xavier_small_residual"``)."""
        xavier = self.cfg.weight_init in ("xavier", "xavier_small_residual")
        if xavier:  # else the conv keeps PyTorch's default, as in timm's and detectron2's ViT
            w = self.patch_embed.proj.weight
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if xavier:
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.cfg.weight_init == "xavier_small_residual":
            # the Linear layers that write into the token stream: each block then adds
            # about a fifth of the stream at the start instead of over half (F16)
            for block in self.blocks:
                nn.init.trunc_normal_(block.attn.proj.weight, std=0.02)
                nn.init.trunc_normal_(block.mlp.fc2.weight, std=0.02)

    def no_weight_decay(self) -> set[str]:
        """Embeddings/tokens excluded from weight decay (with all 1-D parameters)."""
        return {"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"}

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Encoder weights only, in timm ``VisionTransformer`` key names."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(ENCODER_KEY_PREFIXES)}

    def forward_encoder(
        self, imgs: torch.Tensor, ids_keep: torch.Tensor, ffn_last: int = 0
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode the visible patches.

        Args:
            imgs: ``(N, C, H, W)``.
            ids_keep: ``(N, K)`` indices of the visible patches.
            ffn_last: also return the feed-forward outputs of the last ``ffn_last`` blocks.

        Returns:
            ``(latent, ffn_outputs)``: latent ``(N, 1 + K, D)`` (cls first, final norm
            applied) and a list of ``ffn_last`` tensors ``(N, 1 + K, D)``.
        """
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = autocast_stream(torch.cat([cls, x], dim=1))
        ffn_outputs: list[torch.Tensor] = []
        first_tapped = len(self.blocks) - ffn_last
        for i, blk in enumerate(self.blocks):
            if i >= first_tapped:
                x, ffn = block_forward_with_ffn(blk, x)
                ffn_outputs.append(ffn)
            else:
                x = blk(x)
        return self.norm(x), ffn_outputs

    def forward_decoder(self, latent: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Predict every patch from the encoded visible ones.

        Args:
            latent: ``(N, 1 + K, D)`` from :meth:`forward_encoder`.
            ids_keep: ``(N, K)`` the same indices.

        Returns:
            ``(N, L, p * p * C)`` predicted patches.
        """
        x = self.decoder_embed(latent)
        n, _, dd = x.shape
        tokens = self.mask_token.to(x.dtype).expand(n, self.num_patches, dd)
        tokens = tokens.scatter(1, ids_keep.unsqueeze(-1).expand(-1, -1, dd), x[:, 1:])
        x = autocast_stream(torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def reconstruction_target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Patches to reconstruct: ``(N, L, p * p * C)`` float, per-patch normalised
        when ``norm_pix_loss`` (computed once and shared by both DAMA students)."""
        target = patchify(imgs, self.cfg.patch_size).float()
        return normalize_patches(target) if self.cfg.norm_pix_loss else target

    def forward_loss(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked-patch MSE of ``pred`` against :meth:`reconstruction_target`.

        Returns:
            ``(loss, per_patch (N, L))``.
        """
        return reconstruction_loss(pred, target, mask, norm_pix=False)

    def forward(
        self, imgs: torch.Tensor, mask: torch.Tensor, ids_keep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Plain MAE step for a given mask.

        Args:
            imgs: ``(N, C, H, W)``.
            mask: ``(N, L)`` 0 visible / 1 masked.
            ids_keep: ``(N, K)`` the visible indices of ``mask``.

        Returns:
            ``(loss, pred (N, L, P), per_patch_loss (N, L))``.
        """
        latent, _ = self.forward_encoder(imgs, ids_keep)
        pred = self.forward_decoder(latent, ids_keep)
        loss, per_patch = self.forward_loss(pred, self.reconstruction_target(imgs), mask)
        return loss, pred, per_patch


def _layer_norm(dim: int, **kwargs) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6, **kwargs)
