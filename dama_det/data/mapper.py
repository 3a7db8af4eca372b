"""``NChannelDatasetMapper``: Detectron2 dataset dicts of N-channel TIFFs -> model inputs.

Detectron2's ``DatasetMapper`` reads images with PIL (at most 4 channels, uint8); this
mapper reads N-channel TIFF / OME-TIFF files with tifffile
(:func:`dama_det.data.tiff_io.read_tiff`), checks the channel count against
``len(cfg.MODEL.PIXEL_MEAN)``, scales intensities to float
(:mod:`dama_det.data.normalize`) *before* the augmentations, and carries instance
masks as bitmaps decoded from COCO RLE.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.data.detection_utils import filter_empty_instances
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances
from scipy import ndimage

from ..errors import DamaUserError
from .normalize import SCALING_MODES, scale_intensities
from .rle import normalize_segmentation, paint_segmentations, pycocotools_rle
from .tiff_io import read_tiff
from .transforms import apply_to_label_map, apply_to_mask_stack, build_nchannel_augmentations

__all__ = ["NChannelDatasetMapper"]

# Instance masks are decoded and transformed in chunks of this many (bounds memory
# for images with hundreds of cells).
MASK_CHUNK = 64


def _decode_one(segm: Any, height: int, width: int) -> np.ndarray:
    """COCO segmentation (RLE dict, uncompressed RLE, polygons, array) -> uint8 ``(H, W)``."""
    if isinstance(segm, np.ndarray) and segm.ndim == 2:
        return segm.astype(np.uint8)
    return mask_util.decode(pycocotools_rle(normalize_segmentation(segm, height, width)))


class NChannelDatasetMapper:
    """Map one Detectron2 dataset dict of an N-channel TIFF to the model's input dict.

    Steps: read the TIFF as float32 ``(C, H, W)``; check ``C`` and the size; scale the
    intensities; apply the augmentations to the ``(H, W, C)`` float image and, in
    training, the same transforms to all instance masks; build ``Instances`` with
    ``gt_boxes`` (tight boxes of the transformed masks), ``gt_classes`` and
    ``gt_masks`` (:class:`BitMasks`), dropping instances left empty.

    Output: the input dict plus ``"image"`` (float32 tensor ``(C, H', W')``) and, in
    training, ``"instances"``; ``"annotations"`` is removed (as Detectron2 does).
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: Sequence[T.Augmentation | T.Transform],
        num_channels: int,
        intensity_scaling: str = "dtype_max",
        percentile_range: Sequence[float] = (1.0, 99.8),
        use_instance_mask: bool = True,
        channel_names: Sequence[str] | None = None,
    ):
        """
        Args:
            is_train: training (annotations turned into ``instances``) or inference.
            augmentations: Detectron2 augmentations / transforms for ``(H, W, C)``
                float images.
            num_channels: channels every image must have (``len(MODEL.PIXEL_MEAN)``).
            intensity_scaling: ``"dtype_max"``, ``"percentile"`` or ``"none"``.
            percentile_range: ``(low, high)`` for percentile scaling.
            use_instance_mask: add ``gt_masks`` (``MODEL.MASK_ON``).
            channel_names: the expected channel order (``INPUT.CHANNEL_NAMES``); a file
                whose OME channel names differ gets a warning (once per mapper).
        """
        if str(intensity_scaling).lower() not in SCALING_MODES:
            raise DamaUserError(
                f"INPUT.INTENSITY_SCALING: unknown mode {intensity_scaling!r}; choose one of "
                f"{', '.join(SCALING_MODES)}"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(list(augmentations))
        self.num_channels = int(num_channels)
        self.intensity_scaling = str(intensity_scaling).lower()
        self.percentile_range = tuple(float(v) for v in percentile_range)
        self.use_instance_mask = use_instance_mask
        self.channel_names = list(channel_names) if channel_names else None
        self._warned_names = False
        mode = "training" if is_train else "inference"
        logging.getLogger(__name__).info(
            f"[NChannelDatasetMapper] {num_channels} channels, scaling {intensity_scaling}, "
            f"augmentations in {mode}: {augmentations}"
        )

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> dict:
        inp = cfg.INPUT
        fmt = inp.get("FORMAT", "N")
        if fmt != "N":
            raise DamaUserError(
                f"INPUT.FORMAT: NChannelDatasetMapper reads N-channel TIFFs; set it to 'N', "
                f"not {fmt!r}"
            )
        mask_format = inp.get("MASK_FORMAT", "bitmask")
        if cfg.MODEL.MASK_ON and mask_format != "bitmask":
            raise DamaUserError(
                f"INPUT.MASK_FORMAT: NChannelDatasetMapper uses 'bitmask', not {mask_format!r}"
            )
        return {
            "is_train": is_train,
            "augmentations": build_nchannel_augmentations(cfg, is_train),
            "num_channels": len(cfg.MODEL.PIXEL_MEAN),
            "intensity_scaling": inp.get("INTENSITY_SCALING", "dtype_max"),
            "percentile_range": tuple(inp.get("PERCENTILE_RANGE", (1.0, 99.8))),
            "use_instance_mask": bool(cfg.MODEL.MASK_ON),
            "channel_names": list(inp.get("CHANNEL_NAMES", []) or []) or None,
        }

    # ------------------------------------------------------------------ image

    def read_scaled_image(self, dataset_dict: dict) -> np.ndarray:
        """Read, check and scale the image of ``dataset_dict``.

        Returns:
            float32 ``(H, W, C)``.
        """
        path = dataset_dict["file_name"]
        tiff = read_tiff(path, expected_channels=self.num_channels)
        _, h, w = tiff.image.shape
        expected = (dataset_dict.get("height", h), dataset_dict.get("width", w))
        if (h, w) != tuple(expected):
            raise DamaUserError(
                f"{path}: image is {h}x{w} but the dataset says {expected[0]}x{expected[1]}"
            )
        self._check_channel_names(path, tiff.channel_names)
        image = scale_intensities(tiff.image, self.intensity_scaling, tiff.dtype,
                                  self.percentile_range)
        return np.ascontiguousarray(image.transpose(1, 2, 0), dtype=np.float32)

    def _check_channel_names(self, path: str, names: list[str]) -> None:
        """Warn (once) when a file's OME channel names differ from the configured order."""
        if self._warned_names or not self.channel_names:
            return
        if len(self.channel_names) != len(names) or names == [f"ch{i}" for i in range(len(names))]:
            return  # no names in the file (or a count mismatch, reported elsewhere)
        if [n.lower() for n in names] != [n.lower() for n in self.channel_names]:
            self._warned_names = True
            logging.getLogger(__name__).warning(
                f"{path}: channel names {names} differ from INPUT.CHANNEL_NAMES "
                f"{self.channel_names}; channels are used in file order"
            )

    # ------------------------------------------------------------ annotations

    def _masks(self, annos: list[dict], src_hw: tuple[int, int], transforms) -> torch.Tensor:
        """Decode and transform the instance masks one stack at a time -> bool ``(N, H', W')``.

        Used when instances overlap (a label map cannot hold them).
        """
        chunks = []
        for start in range(0, len(annos), MASK_CHUNK):
            part = annos[start:start + MASK_CHUNK]
            stack = np.stack([_decode_one(a["segmentation"], *src_hw) for a in part], axis=-1)
            stack = apply_to_mask_stack(transforms, stack)
            chunks.append(torch.from_numpy(np.ascontiguousarray(stack.transpose(2, 0, 1)) > 0))
        return torch.cat(chunks, dim=0)

    def _transformed_masks(
        self, annos: list[dict], src_hw: tuple[int, int], transforms, out_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Transformed masks of the instances still visible, their tight boxes and indices.

        Non-overlapping instances (the usual case for cells) are painted into one label
        map, transformed once and split again; overlapping ones go mask by mask.

        Returns:
            ``(masks, boxes, keep)``: bool ``(K, H', W')``, float32 XYXY ``(K, 4)`` and
            int64 ``(K,)`` indices into ``annos``.
        """
        if annos:
            labels, areas = paint_segmentations([a["segmentation"] for a in annos], *src_hw)
            painted = np.bincount(labels.ravel(), minlength=len(annos) + 1)[1:]
            moved = apply_to_label_map(transforms, labels) if (painted == areas).all() else None
        else:
            moved = np.zeros(out_hw, np.int32)
        if moved is None:
            masks = self._masks(annos, src_hw, transforms)
            keep = np.nonzero(masks.flatten(1).any(1).numpy())[0]
            masks = masks[torch.from_numpy(keep)]
            return masks, BitMasks(masks).get_bounding_boxes().tensor, keep
        slices = ndimage.find_objects(moved)
        ids = np.array([i + 1 for i, sl in enumerate(slices) if sl is not None], np.int64)
        boxes = np.array(
            [[slices[i - 1][1].start, slices[i - 1][0].start, slices[i - 1][1].stop,
              slices[i - 1][0].stop] for i in ids],
            dtype=np.float32,
        ).reshape(-1, 4)
        masks = torch.from_numpy(moved)[None] == torch.from_numpy(ids.astype(np.int32))[:, None,
                                                                                         None]
        return masks, torch.from_numpy(boxes), ids - 1

    def annotations_to_instances(
        self, annos: list[dict], src_hw: tuple[int, int], transforms, out_hw: tuple[int, int]
    ) -> Instances:
        """Transform the annotations of one image and build (non-empty) ``Instances``."""
        annos = [a for a in annos if int(a.get("iscrowd", 0)) == 0]
        instances = Instances(out_hw)
        classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)
        if self.use_instance_mask:
            # Tight boxes of the transformed masks (exact after crops and rotations);
            # instances left empty are already dropped.
            masks, boxes, keep = self._transformed_masks(annos, src_hw, transforms, out_hw)
            instances.gt_masks = BitMasks(masks)
            instances.gt_boxes = Boxes(boxes)
            instances.gt_classes = classes[torch.from_numpy(keep)]
            return instances
        # Boxes only (MODEL.MASK_ON off): transform the annotated boxes.
        xyxy = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos],
            dtype=np.float64,
        ).reshape(-1, 4)
        xyxy = transforms.apply_box(xyxy) if len(xyxy) else xyxy
        boxes = Boxes(torch.as_tensor(xyxy, dtype=torch.float32))
        boxes.clip(out_hw)
        instances.gt_boxes = boxes
        instances.gt_classes = classes
        return filter_empty_instances(instances)

    # ------------------------------------------------------------------- call

    def __call__(self, dataset_dict: dict) -> dict:
        """Map one dataset dict.

        Args:
            dataset_dict: Detectron2 dataset dict (``file_name``, ``height``, ``width``,
                ``image_id``, ``annotations``).

        Returns:
            dict with ``"image"`` float32 tensor ``(C, H, W)`` and, in training,
            ``"instances"``.
        """
        dataset_dict = copy.copy(dataset_dict)  # annotations are only read, never changed
        image = self.read_scaled_image(dataset_dict)
        src_hw = image.shape[:2]
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        out_hw = tuple(image.shape[:2])
        dataset_dict["image"] = torch.as_tensor(
            np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        )
        annos = dataset_dict.pop("annotations", None)
        if self.is_train and annos is not None:
            try:
                dataset_dict["instances"] = self.annotations_to_instances(
                    annos, src_hw, transforms, out_hw
                )
            except (ValueError, KeyError) as exc:
                raise DamaUserError(
                    f"{dataset_dict['file_name']}: bad annotation ({type(exc).__name__}: {exc})"
                ) from None
        return dataset_dict
