"""The per-iteration training step: fp32, CUDA mixed precision (Detectron2's
``AMPTrainer``) or bf16 autocast on CPU."""
from __future__ import annotations

import time

import torch
from detectron2.config import CfgNode
from detectron2.engine import AMPTrainer, SimpleTrainer

from ..errors import DamaUserError

__all__ = ["CPUAutocastTrainer", "build_train_loop", "resolve_amp"]


class CPUAutocastTrainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward pass (model + losses) runs under
    ``torch.autocast("cpu", dtype)`` (bf16 on CPUs with AVX512-BF16 / AMX); the
    backward pass and optimizer step stay outside autocast, weights stay fp32."""

    def __init__(self, model, data_loader, optimizer, dtype: torch.dtype = torch.bfloat16,
                 **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.dtype = dtype

    def run_step(self) -> None:
        assert self.model.training, "[CPUAutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with torch.autocast(device_type="cpu", dtype=self.dtype):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                losses, loss_dict = loss_dict, {"total_loss": loss_dict}
            else:
                losses = sum(loss_dict.values())
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        losses.backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


def resolve_amp(cfg: CfgNode) -> torch.dtype | None:
    """The autocast dtype training uses under this config (None = fp32).

    CUDA: ``SOLVER.AMP.ENABLED`` with ``SOLVER.AMP.DTYPE`` ("auto" = bf16 where the GPU
    supports it, else fp16). CPU: bf16 when ``SOLVER.AMP.CPU_BF16``.
    """
    device = torch.device(cfg.MODEL.DEVICE)
    if device.type == "cuda":
        if not cfg.SOLVER.AMP.ENABLED:
            return None
        choice = cfg.SOLVER.AMP.DTYPE.lower()
        if choice == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if choice not in ("bf16", "fp16"):
            raise DamaUserError(f"SOLVER.AMP.DTYPE must be auto, bf16 or fp16, not {choice!r}")
        return torch.bfloat16 if choice == "bf16" else torch.float16
    return torch.bfloat16 if cfg.SOLVER.AMP.CPU_BF16 else None


def build_train_loop(cfg: CfgNode, model, data_loader, optimizer) -> SimpleTrainer:
    """Pick the training-step implementation for the config's device and precision."""
    dtype = resolve_amp(cfg)
    if dtype is None:
        return SimpleTrainer(model, data_loader, optimizer)
    if torch.device(cfg.MODEL.DEVICE).type == "cuda":
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        return AMPTrainer(model, data_loader, optimizer, grad_scaler=scaler, precision=dtype)
    return CPUAutocastTrainer(model, data_loader, optimizer, dtype=dtype)
