"""Training hooks dama_det adds to Detectron2's: the validation loss."""
from __future__ import annotations

import logging
from typing import Callable, Iterable

import numpy as np
import torch
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


class ValidationLossHook(HookBase):
    """Every ``period`` iterations (and after the last), compute the training losses on
    validation images without gradients and log them as ``val_total_loss`` and
    ``val_<loss name>`` (TensorBoard, metrics.json).

    The model runs in training mode (Detectron2 models return losses only there);
    under DDP each process sees its share of the images and the means are averaged.
    """

    def __init__(self, period: int, build_loader: Callable[[], Iterable[list[dict]]]):
        """
        Args:
            period: iterations between passes (<= 0: only after training).
            build_loader: returns a fresh loader of validation batches mapped with
                annotations (``instances``).
        """
        self._period = int(period)
        self._build_loader = build_loader

    def _model(self) -> torch.nn.Module:
        model = self.trainer.model
        return model.module if isinstance(model, DistributedDataParallel) else model

    def compute(self) -> dict[str, float]:
        """Mean validation losses over the validation loader."""
        model = self._model()
        was_training = model.training
        model.train()
        sums: dict[str, float] = {}
        count = 0
        with torch.no_grad():
            for batch in self._build_loader():
                losses = model(batch)
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
        model.train(was_training)
        gathered = comm.all_gather((sums, count))
        total = sum(c for _, c in gathered)
        if total == 0:
            return {}
        keys = sorted({k for s, _ in gathered for k in s})
        means = {f"val_{k}": sum(s.get(k, 0.0) for s, _ in gathered) / total for k in keys}
        means["val_total_loss"] = float(np.sum([means[f"val_{k}"] for k in keys]))
        return means

    def _run(self) -> None:
        means = self.compute()
        if means and comm.is_main_process():
            self.trainer.storage.put_scalars(**means, smoothing_hint=False)
            logger.info("Validation loss: %s",
                        ", ".join(f"{k}={v:.4f}" for k, v in sorted(means.items())))

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if (self._period > 0 and next_iter % self._period == 0
                and next_iter != self.trainer.max_iter):
            self._run()

    def after_train(self) -> None:
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._run()
