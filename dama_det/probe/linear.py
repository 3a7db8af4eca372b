"""Linear probe: multinomial logistic regression on standardised frozen features.

Each feature is standardised with the training split's mean and standard deviation
(constant features become 0). The weights ``W (D, C)`` and bias ``b (C,)`` start at
zero and minimise, full batch with L-BFGS (strong-Wolfe line search, at most
``max_iter`` iterations)::

    sum_i w_i * CE(x_i W + b, y_i) / sum_i w_i  +  weight_decay / 2 * ||W||^2

With ``balanced=True`` (default) ``w_i = 1 / count(y_i)``, so every class weighs the
same (the fit targets balanced accuracy, as the dense task is mostly background);
otherwise ``w_i = 1``. Zero init and full-batch steps make the result deterministic:
the same features give the same probe (no seed is involved).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .metrics import classification_metrics


@dataclass
class LinearProbe:
    """A fitted probe: ``logits = ((x - mean) / std) @ weight + bias``.

    Attributes:
        mean, std: ``(D,)`` standardisation of the training features.
        weight: ``(D, C)``.
        bias: ``(C,)``.
        final_loss: the objective at the end of the fit.
        iterations: L-BFGS iterations run.
    """

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    final_loss: float
    iterations: int

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` features -> ``(N, C)`` logits."""
        return ((x.float() - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` features -> ``(N,)`` predicted classes."""
        return self.logits(x).argmax(dim=1)


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    balanced: bool = True,
) -> LinearProbe:
    """Fit a logistic-regression probe (see the module docstring).

    Args:
        features: ``(M, D)`` training features.
        labels: ``(M,)`` class indices in ``[0, num_classes)``.
        num_classes: ``C``.
        weight_decay: L2 penalty on ``W`` (on standardised features).
        max_iter: L-BFGS iterations.
        balanced: weigh classes equally in the loss.

    Returns:
        The fitted :class:`LinearProbe`.
    """
    x = features.float()
    y = torch.as_tensor(labels, dtype=torch.int64)
    if len(x) == 0:
        raise ValueError("the linear probe needs at least one training sample")
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    x = (x - mean) / std
    counts = torch.bincount(y, minlength=num_classes).double()
    if balanced:
        class_weight = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    else:
        class_weight = torch.ones(num_classes, dtype=torch.float64)
    sample_weight = class_weight[y].float()
    sample_weight = sample_weight / sample_weight.sum()
    weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)

    def objective() -> torch.Tensor:
        ce = F.cross_entropy(x @ weight + bias, y, reduction="none")
        return (ce * sample_weight).sum() + 0.5 * weight_decay * weight.pow(2).sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        final = float(objective())
    state = opt.state[opt._params[0]]
    return LinearProbe(mean=mean, std=std, weight=weight.detach(), bias=bias.detach(),
                       final_loss=final, iterations=int(state.get("n_iter", 0)))


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    balanced: bool = True,
) -> dict[str, Any]:
    """Fit on the training split and score the test split.

    Args:
        train_features, test_features: ``(M, D)`` and ``(N, D)``.
        train_labels, test_labels: ``(M,)`` and ``(N,)`` class indices.
        num_classes: ``C``.
        class_names: ``C`` names for the per-class recall.
        weight_decay, max_iter, balanced: see :func:`fit_linear_probe`.

    Returns:
        :func:`~dama_det.probe.metrics.classification_metrics` of the test split, with
        ``train_accuracy``, ``train_balanced_accuracy`` and the settings.
    """
    probe = fit_linear_probe(train_features, train_labels, num_classes=num_classes,
                             weight_decay=weight_decay, max_iter=max_iter, balanced=balanced)
    with torch.no_grad():
        out = classification_metrics(test_labels, probe.predict(test_features), num_classes,
                                     class_names)
        train = classification_metrics(train_labels, probe.predict(train_features),
                                       num_classes, class_names)
    out.update(train_accuracy=train["accuracy"],
               train_balanced_accuracy=train["balanced_accuracy"],
               weight_decay=weight_decay, max_iter=max_iter, balanced=balanced,
               iterations=probe.iterations)
    return out
