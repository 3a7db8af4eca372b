"""Pretraining augmentations for N-channel crops (the paper's recipe).

Random crop + resize (by default a quarter of the area, the paper's 64 x 64 of a
128 x 128 crop, resized to the model's image size), random rotation within +-90
degrees and shift up to 30 % (one affine warp, so the image is interpolated once),
horizontal and vertical flips. ``torchvision.transforms.v2`` treats a plain
``(C, H, W)`` tensor as an image with any channel count, so 7-channel crops work.
"""
from __future__ import annotations

from typing import Sequence

from torchvision.transforms import v2


def pretrain_transform(
    img_size: int,
    crop_scale: Sequence[float] = (0.25, 1.0),
    rotation: float = 90.0,
    shift: float = 0.3,
    flips: bool = True,
) -> v2.Transform:
    """Random augmentation for pretraining.

    Args:
        img_size: output side length.
        crop_scale: ``(min, max)`` fraction of the crop area kept before resizing.
        rotation: maximum absolute rotation in degrees (0 = none).
        shift: maximum translation as a fraction of the side (0 = none).
        flips: random horizontal and vertical flips.

    Returns:
        A transform ``(C, H, W) float -> (C, img_size, img_size) float``.
    """
    lo, hi = float(crop_scale[0]), float(crop_scale[1])
    steps: list[v2.Transform] = [v2.RandomResizedCrop(img_size, scale=(lo, hi), antialias=True)]
    if rotation > 0 or shift > 0:
        steps.append(v2.RandomAffine(degrees=rotation,
                                     translate=(shift, shift) if shift > 0 else None,
                                     interpolation=v2.InterpolationMode.BILINEAR))
    if flips:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    return v2.Compose(steps)


def resize_transform(img_size: int) -> v2.Transform:
    """Deterministic resize to ``img_size x img_size`` (for figures and evaluation)."""
    return v2.Resize((img_size, img_size), antialias=True)

