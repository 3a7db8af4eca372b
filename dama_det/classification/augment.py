"""Fine-tuning augmentation for N-channel crops (tensors, any channel count).

Training: torchvision's ``RandomResizedCrop`` (the paper's augmentation; by default over
the whole crop, since a cell-centred crop must keep its cell), horizontal
and vertical flips (cells have no up/down), then timm's ``RandomErasing`` per sample.
Both libraries work on ``(C, H, W)`` tensors with any ``C`` (RandomErasing takes the
channel count from the tensor; ``tests/classification/test_finetuning.py`` checks it on 7
channels). Batch-level mixup/cutmix is done by ``timm.data.Mixup`` in the training
loop. Evaluation only resizes to the model's input size.
"""
from __future__ import annotations

from typing import Callable

import torch
from timm.data.random_erasing import RandomErasing
from torchvision.transforms import v2

ERASE_MODES = ("const", "rand", "pixel")


def build_train_transform(
    img_size: int,
    crop_scale: tuple[float, float] = (1.0, 1.0),
    hflip: float = 0.5,
    vflip: float = 0.5,
    reprob: float = 0.25,
    remode: str = "const",
    recount: int = 1,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training transform: ``(C, H, W)`` float tensor -> ``(C, S, S)``.

    Args:
        img_size: output side length ``S``.
        crop_scale: area range of RandomResizedCrop (fraction of the crop); the default
            (1, 1) keeps the whole cell-centred crop (aspect jitter only), the paper's
            (0.08, 1) often cuts the labelled cell away.
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        reprob: random erasing probability (0 disables it).
        remode: erased pixels: "const" (0: the mean of standardised input, the
            background of unstandardised fluorescence), "rand" (one normal value per
            channel) or "pixel".
        recount: maximum number of erased rectangles.

    Returns:
        A callable on tensors.
    """
    steps: list[Callable] = [
        v2.RandomResizedCrop(img_size, scale=crop_scale, antialias=True),
    ]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if vflip > 0:
        steps.append(v2.RandomVerticalFlip(vflip))
    if reprob > 0:
        steps.append(RandomErasing(probability=reprob, mode=remode, max_count=recount,
                                   device="cpu"))
    return v2.Compose(steps)


def build_eval_transform(img_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The evaluation transform: resize ``(C, H, W)`` to ``(C, S, S)`` (no-op if equal)."""
    return v2.Resize((img_size, img_size), antialias=True)
