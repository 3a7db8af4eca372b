"""Augmentations for N-channel float images and stacks of instance masks.

Detectron2's flips, :class:`~detectron2.data.transforms.ResizeScale` (torch
interpolation for float images), :class:`~detectron2.data.transforms.FixedSizeCrop`,
crops and pads already work on ``(H, W, C)`` float arrays with any ``C``. Added here:
the 90-degree rotation, a scale jitter around the image's own size
(:class:`NativeScaleJitter`: microscopy has a fixed pixel size, and inference runs at
it), :func:`build_nchannel_augmentations` (the training pipeline from the config) and
:func:`apply_to_mask_stack` (all instance masks of an image through the same
transforms at once).
"""
from __future__ import annotations

import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform, Transform, TransformList
from PIL import Image

from ..errors import DamaUserError


class Rot90Transform(Transform):
    """Rotate by ``k`` x 90 degrees counter-clockwise (as :func:`numpy.rot90`).

    Args:
        h: input height.
        w: input width.
        k: number of quarter turns (0-3).
    """

    def __init__(self, h: int, w: int, k: int):
        super().__init__()
        self._set_attributes({"h": int(h), "w": int(w), "k": int(k) % 4})

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        """Rotate ``(H, W)`` or ``(H, W, C)`` arrays."""
        assert img.shape[:2] == (self.h, self.w), (img.shape, self.h, self.w)
        return np.ascontiguousarray(np.rot90(img, self.k, axes=(0, 1)))

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Rotate ``(N, 2)`` ``(x, y)`` coordinates (pixel-edge convention)."""
        x, y = coords[:, 0].copy(), coords[:, 1].copy()
        if self.k == 1:  # out[i, j] = in[j, W-1-i]
            coords[:, 0], coords[:, 1] = y, self.w - x
        elif self.k == 2:
            coords[:, 0], coords[:, 1] = self.w - x, self.h - y
        elif self.k == 3:
            coords[:, 0], coords[:, 1] = self.h - y, x
        return coords

    def inverse(self) -> Transform:
        h, w = (self.w, self.h) if self.k % 2 else (self.h, self.w)
        return Rot90Transform(h, w, (4 - self.k) % 4)


class RandomRot90(T.Augmentation):
    """Rotate by 0, 90, 180 or 270 degrees, chosen uniformly."""

    def __init__(self):
        super().__init__()

    def get_transform(self, image: np.ndarray) -> Transform:
        k = int(np.random.randint(4))
        if k == 0:
            return NoOpTransform()
        h, w = image.shape[:2]
        return Rot90Transform(h, w, k)


class NativeScaleJitter(T.Augmentation):
    """Resize by a random factor in ``[min_scale, max_scale]`` of the image's own size.

    Detectron2's ``ResizeScale`` first fits the image into the crop size, so an image
    larger than the crop is shrunk during training but predicted at its own size; here
    a factor of 1 keeps the pixel size that inference sees.

    Args:
        min_scale, max_scale: range of the uniform random factor.
        interp: PIL interpolation of the image (masks: nearest).
    """

    def __init__(self, min_scale: float, max_scale: float, interp=Image.BILINEAR):
        super().__init__()
        if not 0 < min_scale <= max_scale:
            raise ValueError(
                f"scale range must satisfy 0 < min <= max, got ({min_scale}, {max_scale})")
        self.min_scale, self.max_scale, self.interp = float(min_scale), float(max_scale), interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        scale = float(np.random.uniform(self.min_scale, self.max_scale))
        return T.ResizeTransform(h, w, max(1, int(round(h * scale))),
                                 max(1, int(round(w * scale))), self.interp)


def build_nchannel_augmentations(cfg, is_train: bool) -> list[T.Augmentation]:
    """The augmentation list for N-channel images from the config.

    Training: large-scale jitter (a random resize - ``ResizeScale`` for
    ``INPUT.LSJ.MODE`` "fit", :class:`NativeScaleJitter` for "native" - then
    ``FixedSizeCrop`` to ``INPUT.LSJ.IMAGE_SIZE``, padded with ``INPUT.PAD_VALUE``) when
    ``INPUT.LSJ.ENABLED``,
    else Detectron2's optional ``INPUT.CROP`` and ``ResizeShortestEdge``
    (``MIN_SIZE_TRAIN``...); then random horizontal / vertical flips and 90-degree
    rotations as ``INPUT.HFLIP`` / ``VFLIP`` / ``ROT90`` say. Inference: nothing (the
    image keeps its size).

    Args:
        cfg: config with :func:`dama_det.config.add_dama_config` keys.
        is_train: training or inference.

    Returns:
        list of Detectron2 augmentations.
    """
    if not is_train:
        return []
    inp = cfg.INPUT
    augs: list[T.Augmentation] = []
    lsj = inp.get("LSJ", None)
    if lsj is not None and lsj.get("ENABLED", False):
        size = int(lsj.IMAGE_SIZE)
        lo, hi = (float(v) for v in lsj.SCALE_RANGE)
        mode = lsj.get("MODE", "fit")
        if mode == "fit":
            augs.append(T.ResizeScale(lo, hi, size, size, interp=Image.BILINEAR))
        elif mode == "native":
            augs.append(NativeScaleJitter(lo, hi))
        else:
            raise DamaUserError(f"INPUT.LSJ.MODE: expected 'fit' or 'native', got {mode!r}")
        augs.append(
            T.FixedSizeCrop((size, size), pad=True, pad_value=float(inp.get("PAD_VALUE", 0.0)),
                            seg_pad_value=0)
        )
    else:
        if inp.CROP.ENABLED:
            augs.append(T.RandomCrop(inp.CROP.TYPE, inp.CROP.SIZE))
        augs.append(
            T.ResizeShortestEdge(inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN,
                                 inp.MIN_SIZE_TRAIN_SAMPLING)
        )
    if inp.get("HFLIP", True):
        augs.append(T.RandomFlip(0.5, horizontal=True, vertical=False))
    if inp.get("VFLIP", False):
        augs.append(T.RandomFlip(0.5, horizontal=False, vertical=True))
    if inp.get("ROT90", False):
        augs.append(RandomRot90())
    return augs


def _flatten(transforms: Transform | TransformList) -> list[Transform]:
    if isinstance(transforms, TransformList):
        out: list[Transform] = []
        for t in transforms.transforms:
            out.extend(_flatten(t))
        return out
    return [transforms]


def apply_to_mask_stack(transforms: Transform | TransformList, masks: np.ndarray) -> np.ndarray:
    """Apply image transforms to a stack of binary instance masks at once.

    Resizing uses nearest-neighbour interpolation; padding adds background (0).

    Args:
        transforms: the transforms applied to the image.
        masks: uint8 ``(H, W, N)``.

    Returns:
        uint8 ``(H', W', N)``.
    """
    for t in _flatten(transforms):
        if isinstance(t, NoOpTransform):
            continue
        if isinstance(t, T.ResizeTransform):
            # Float path of ResizeTransform: torch "nearest" on any channel count.
            resized = t.apply_image(masks.astype(np.float32), interp=Image.NEAREST)
            masks = (resized.reshape(resized.shape[:2] + (masks.shape[2],)) > 0.5).astype(np.uint8)
        elif isinstance(t, (T.HFlipTransform, T.VFlipTransform, T.CropTransform, T.PadTransform,
                            Rot90Transform)):
            if isinstance(t, T.PadTransform) and t.seg_pad_value != 0:
                t = T.PadTransform(t.x0, t.y0, t.x1, t.y1, t.orig_w, t.orig_h, t.pad_value, 0)
            masks = np.ascontiguousarray(t.apply_segmentation(masks))
        else:  # any other transform: one mask at a time through its segmentation path
            if masks.shape[2] == 0:
                shape = t.apply_segmentation(np.zeros(masks.shape[:2], np.uint8)).shape[:2]
                masks = np.zeros(shape + (0,), np.uint8)
            else:
                masks = np.stack(
                    [t.apply_segmentation(masks[..., i]) for i in range(masks.shape[2])], axis=-1
                )
    return masks


_LABEL_MAP_SAFE = (T.HFlipTransform, T.VFlipTransform, T.CropTransform, T.PadTransform,
                   Rot90Transform, NoOpTransform)


def apply_to_label_map(
    transforms: Transform | TransformList, labels: np.ndarray
) -> np.ndarray | None:
    """Apply image transforms to an int32 instance label map (0 = background).

    One label map instead of one mask per instance: images with hundreds of cells cost
    one nearest-neighbour resize, not hundreds. Resizing is nearest-neighbour, padding
    adds background.

    Args:
        transforms: the transforms applied to the image.
        labels: int32 ``(H, W)``.

    Returns:
        int32 ``(H', W')``, or None if a transform is of a kind this function does not
        know (then use :func:`apply_to_mask_stack`).
    """
    steps = _flatten(transforms)
    if not all(isinstance(t, (T.ResizeTransform,) + _LABEL_MAP_SAFE) for t in steps):
        return None
    if labels.size and labels.max() >= 2**24:  # float32 resize must stay exact
        return None
    for t in steps:
        if isinstance(t, NoOpTransform):
            continue
        if isinstance(t, T.ResizeTransform):
            resized = t.apply_image(labels.astype(np.float32), interp=Image.NEAREST)
            labels = np.rint(resized).astype(np.int32)
        else:
            if isinstance(t, T.PadTransform) and t.seg_pad_value != 0:
                t = T.PadTransform(t.x0, t.y0, t.x1, t.y1, t.orig_w, t.orig_h, t.pad_value, 0)
            labels = np.ascontiguousarray(t.apply_segmentation(labels))
    return labels
