"""The pretraining model: MAE or DAMA (two students), selectable by method name.

The methods are registered in :mod:`.method_registry`; each says which second mask
student 2 gets (adaptive / random / no student 2), whether student 2 is an EMA teacher
and whether student 1 regresses student 2's features. The built-in methods:

* ``mae``: one masked autoencoder, random mask, reconstruction loss.
* ``dama``: two students, both trained by gradient. Student 1 uses a random mask and
  the reconstruction loss; student 2 uses the adaptive mask built from student 1's
  mask and per-patch loss (:func:`masking.adaptive_mask`) and its own reconstruction
  loss; a projection head on student 1's encoder output regresses a target built
  from student 2's last K blocks (detached: the target gets no gradient from the
  regression term).
* ``dama-ema``: as ``dama`` but student 2 is an exponential moving average of
  student 1 (a teacher, no gradient, no reconstruction loss); call
  :meth:`DAMAPretrainer.update_teacher` after every optimizer step.
* ``dama-rand``: as ``dama`` but student 2's mask is random instead of adaptive.

Token alignment for the regression: token ``j`` of student 1's visible list (in
ascending patch order) regresses token ``j`` of student 2's list; both hold
``len_keep`` patch tokens (the cls token is not regressed).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import DamaUserError
from .losses import feature_regression_loss, regression_target
from .masking import adaptive_mask, ids_keep_from_mask, mask_lengths, random_mask
from .method_registry import PretrainMethod, get_method
from .models_mae import MAEConfig, MaskedAutoencoderViT


@dataclass(frozen=True)
class MethodConfig:
    """Method choice and loss settings (defaults: the paper's)."""

    method: str = "dama"
    mask_ratio: float = 0.8
    overlap_ratio: float = 0.5
    regress_blocks: int = 6
    smooth_l1_beta: float = 2.0
    weight_regression: float = 1.0
    weight_recon1: float = 1.0
    weight_recon2: float = 1.0
    stable_epochs: int = 0
    ema_momentum: float = 0.999

    def to_dict(self) -> dict:
        return asdict(self)


def validate_method(cfg: MethodConfig, num_patches: int) -> PretrainMethod:
    """Check the method settings (one clear message per mistake).

    Returns:
        The registered definition of ``cfg.method``.
    """
    definition = get_method(cfg.method)
    try:
        len_keep, loss_len, _ = mask_lengths(num_patches, cfg.mask_ratio, cfg.overlap_ratio)
    except ValueError as exc:
        raise DamaUserError(f"--mask-ratio/--overlap-ratio: {exc}") from None
    if definition.second_mask == "adaptive" and loss_len < 0:
        raise DamaUserError(
            f"--method {cfg.method} needs --mask-ratio >= 0.5, got {cfg.mask_ratio}")
    if cfg.regress_blocks < 1:
        raise DamaUserError(f"--regress-blocks must be >= 1, got {cfg.regress_blocks}")
    if not 0.0 <= cfg.ema_momentum <= 1.0:
        raise DamaUserError(f"--ema-momentum must be in [0, 1], got {cfg.ema_momentum}")
    return definition


class ProjectionHead(nn.Module):
    """Student 1's regression head: Linear D->2D, LN, ReLU, Linear 2D->D, LN, ReLU, Softmax."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.LayerNorm(2 * dim), nn.ReLU(inplace=True),
            nn.Linear(2 * dim, dim), nn.LayerNorm(dim), nn.ReLU(inplace=True),
            nn.Softmax(dim=-1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, T, D) -> (N, T, D)``, a distribution over D per token."""
        return self.net(x)


class DAMAPretrainer(nn.Module):
    """MAE / DAMA pretraining model; ``student1`` is the encoder that gets exported.

    Args:
        model_cfg: architecture of each student.
        method_cfg: method and loss settings; ``method_cfg.method`` names a method of
            :mod:`.method_registry`, whose definition decides student 2, its mask, the
            EMA teacher and the regression.
    """

    def __init__(self, model_cfg: MAEConfig, method_cfg: MethodConfig):
        super().__init__()
        self.student1 = MaskedAutoencoderViT(model_cfg)
        # Input standardisation (model_cfg.pixel_mean/std); not in the state dict: the
        # config carries it into checkpoints and the export's metadata.
        shape = (1, model_cfg.in_chans, 1, 1)
        mean = model_cfg.pixel_mean or (0.0,) * model_cfg.in_chans
        std = model_cfg.pixel_std or (1.0,) * model_cfg.in_chans
        if len(mean) != model_cfg.in_chans or len(std) != model_cfg.in_chans:
            raise DamaUserError(f"pixel mean/std need {model_cfg.in_chans} value(s) each, got "
                                f"{len(mean)} and {len(std)}")
        self.register_buffer("pixel_mean", torch.tensor(mean).view(shape), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(shape), persistent=False)
        num_patches = self.student1.num_patches
        self.definition = validate_method(method_cfg, num_patches)
        self.model_cfg = model_cfg
        self.method_cfg = method_cfg
        self.method = method_cfg.method
        self.num_patches = num_patches
        self.regress_blocks = min(method_cfg.regress_blocks, model_cfg.depth)
        self.student2: MaskedAutoencoderViT | None = None
        self.head: ProjectionHead | None = None
        if self.definition.two_students:
            if self.definition.regression:
                self.head = ProjectionHead(model_cfg.embed_dim)
            if self.definition.ema_teacher:
                self.student2 = copy.deepcopy(self.student1)
                self.student2.requires_grad_(False)
            else:
                self.student2 = MaskedAutoencoderViT(model_cfg)

    @property
    def is_ema(self) -> bool:
        """Whether student 2 is an EMA teacher of student 1."""
        return self.definition.ema_teacher

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Student 1's encoder in timm ``VisionTransformer`` key names."""
        return self.student1.encoder_state_dict()

    def no_weight_decay(self) -> set[str]:
        """Names of embedding/token parameters excluded from weight decay."""
        names = {f"student1.{n}" for n in self.student1.no_weight_decay()}
        if self.student2 is not None:
            names |= {f"student2.{n}" for n in self.student2.no_weight_decay()}
        return names

    @torch.no_grad()
    def update_teacher(self, momentum: float | None = None) -> None:
        """EMA update of student 2 from student 1 (EMA-teacher methods only; no-op otherwise)."""
        if not self.is_ema or self.student2 is None:
            return
        m = self.method_cfg.ema_momentum if momentum is None else momentum
        for t, s in zip(self.student2.parameters(), self.student1.parameters()):
            t.mul_(m).add_(s.detach(), alpha=1.0 - m)

    def forward(
        self, imgs: torch.Tensor, epoch: float = 0.0, return_outputs: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        """One pretraining forward pass.

        Args:
            imgs: ``(N, C, H, W)`` images scaled to [0, 1]; standardised here with the
                config's ``pixel_mean`` / ``pixel_std`` when it has them.
            epoch: fractional epoch (regression is off during ``stable_epochs``).
            return_outputs: also return masks and predictions (for figures).

        Returns:
            ``(loss, terms, outputs)``: the total loss; detached per-term losses
            (``recon1``; ``recon2`` with a student 2; ``regression`` with the
            regression term); and, if requested, ``mask1``,
            ``mask2`` ``(N, L)`` and ``pred1``, ``pred2`` ``(N, L, p * p * C)``.
        """
        mc = self.method_cfg
        if self.model_cfg.pixel_mean is not None:
            imgs = (imgs - self.pixel_mean) / self.pixel_std
        n = imgs.shape[0]
        mask1 = random_mask(n, self.num_patches, mc.mask_ratio, device=imgs.device)
        ids1 = ids_keep_from_mask(mask1)
        tap = self.regress_blocks if self.head is not None else 0
        target = self.student1.reconstruction_target(imgs)  # shared by both students
        latent1, _ = self.student1.forward_encoder(imgs, ids1)
        pred1 = self.student1.forward_decoder(latent1, ids1)
        recon1, per_patch1 = self.student1.forward_loss(pred1, target, mask1)
        terms: dict[str, torch.Tensor] = {"recon1": recon1.detach()}
        outputs: dict[str, Any] = {}
        loss = mc.weight_recon1 * recon1
        if return_outputs:
            outputs.update(mask1=mask1, pred1=pred1.detach())
        if self.student2 is None:
            return loss, terms, outputs

        mask2 = self._second_mask(mask1, per_patch1)
        ids2 = ids_keep_from_mask(mask2)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.is_ema):
            latent2, ffn2 = self.student2.forward_encoder(imgs, ids2, ffn_last=tap)
            pred2 = self.student2.forward_decoder(latent2, ids2)
            recon2, _ = self.student2.forward_loss(pred2, target, mask2)
        terms["recon2"] = recon2.detach()
        if not self.is_ema:
            loss = loss + mc.weight_recon2 * recon2

        if return_outputs:
            outputs.update(mask2=mask2, pred2=pred2.detach())
        if self.head is None:
            return loss, terms, outputs
        features = regression_target([y[:, 1:].detach() for y in ffn2])
        regression = feature_regression_loss(self.head(latent1[:, 1:]), features,
                                             beta=mc.smooth_l1_beta)
        terms["regression"] = regression.detach()
        reg_weight = mc.weight_regression if epoch >= mc.stable_epochs else 0.0
        loss = loss + reg_weight * regression  # kept in the graph (x0) for DDP during warm epochs
        return loss, terms, outputs

    def _second_mask(self, mask1: torch.Tensor, per_patch1: torch.Tensor) -> torch.Tensor:
        """Student 2's mask, as the method's ``second_mask`` says (adaptive or random)."""
        mc = self.method_cfg
        if self.definition.second_mask == "random":
            return random_mask(mask1.shape[0], self.num_patches, mc.mask_ratio, device=mask1.device)
        return adaptive_mask(mask1, per_patch1.detach(), mc.mask_ratio, mc.overlap_ratio)
