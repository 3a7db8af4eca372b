"""Predict a list of images and write every output (what ``dama-det predict`` runs).

For each image: read it (channel count checked), scale intensities as the dataset
mapper does at test time, predict by tiles, paint ``<stem>_masks.tif``, draw
``<stem>_overlay.png``; finally write one ``predictions.json`` holding the images, the
category and the COCO results of all images (``annotations``, each with ``score``),
which ``dama-det eval`` reads beside a ground truth from ``dama-det data to-coco``.

Images are read ahead in DataLoader workers (:mod:`.image_loader`) and their windows go
through the model ``batch_size`` at a time, across image boundaries
(:func:`.tiling.predict_images_tiled`); neither changes a single output bit.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.coco_labels import MASK_SUFFIX
from ..data.normalize import scale_intensities
from ..data.tiff_io import write_label_image
from ..utils import atomic_write_json
from .image_loader import WHOLE_IMAGE_SCALINGS, PredictImageDataset, load_images
from .inputs import InputImage
from .merge import paint_labels
from .outputs import CATEGORY, detections_to_coco_results, render_overlay, write_png
from .tiling import ImageToTile, predict_images_tiled
from .types import Detection, TilePredictor

PREDICTIONS_JSON = "predictions.json"
MASKS_SUFFIX, OVERLAY_SUFFIX = f"{MASK_SUFFIX}.tif", "_overlay.png"  # <stem> + suffix


def earlier_prediction_outputs(out_dir: str | os.PathLike) -> list[Path]:
    """The files an earlier prediction run wrote into ``out_dir``, as its
    ``predictions.json`` lists them: that json, then each image's label image and overlay.

    Only the files the json names are returned (never other ``*_masks.tif`` in the
    folder, e.g. ground-truth label images beside their images), so ``--overwrite`` can
    remove exactly them. An unreadable json gives just itself.

    Returns:
        Paths in ``out_dir`` (they may be missing); empty without ``predictions.json``.
    """
    out = Path(out_dir)
    path = out / PREDICTIONS_JSON
    if not path.is_file():
        return []
    try:
        images = json.loads(path.read_text(encoding="utf-8")).get("images", [])
        names = [str(img["masks_file"]) for img in images]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return [path]
    found = [path]
    for name in names:
        if Path(name).name != name or not name.endswith(MASKS_SUFFIX):
            continue  # not an output of ours: never touch it
        found += [out / name, out / (name[: -len(MASKS_SUFFIX)] + OVERLAY_SUFFIX)]
    return found


@dataclass
class PredictOptions:
    """Settings of a prediction run.

    Attributes:
        num_channels: channels every image must have (``len(MODEL.PIXEL_MEAN)``).
        intensity_scaling: ``INPUT.INTENSITY_SCALING`` of the training config.
        percentile_range: ``INPUT.PERCENTILE_RANGE``.
        tile_size: sliding-window side (pixels).
        overlap: minimum window overlap (pixels).
        batch_size: windows per forward pass (across images; the outputs do not
            depend on it).
        workers: background processes reading the next images (0: the main process).
        merge_threshold: overlap above which detections of two windows are merged.
        overlay: write ``<stem>_overlay.png``.
        progress: show progress bars.
    """

    num_channels: int
    intensity_scaling: str = "dtype_max"
    percentile_range: Sequence[float] = (1.0, 99.8)
    tile_size: int = 256
    overlap: int = 64
    batch_size: int = 4  # `dama-det predict --batch`
    workers: int = 0
    merge_threshold: float = 0.5
    overlay: bool = True
    progress: bool = True
    info: dict[str, Any] = field(default_factory=dict)


def _tiler_input(key: Any, image: np.ndarray, source_dtype: np.dtype, opts: PredictOptions,
                 scaled: np.ndarray | None = None) -> ImageToTile:
    """What the tiler predicts for one raw ``(C, H, W)`` image: the image scaled as a
    whole (``scaled`` when the reader did it; computed here for whole-image scalings
    otherwise), or the raw image with a per-window scaling (no full-size float copy)."""
    mode = str(opts.intensity_scaling).lower()
    if scaled is None and mode in WHOLE_IMAGE_SCALINGS:
        scaled = scale_intensities(image, mode, source_dtype, opts.percentile_range)
    if scaled is not None:
        return ImageToTile(key, scaled, None)

    def transform(tile: np.ndarray) -> np.ndarray:
        return scale_intensities(tile, mode, source_dtype, opts.percentile_range)

    return ImageToTile(key, image, transform)


def _tiled(items: Iterable[ImageToTile], predictor: TilePredictor,
           opts: PredictOptions) -> Iterator[tuple[Any, list[Detection]]]:
    return predict_images_tiled(
        items, predictor, tile_size=opts.tile_size, overlap=opts.overlap,
        batch_size=opts.batch_size, merge_threshold=opts.merge_threshold,
        progress=opts.progress)


def predict_one(image: np.ndarray, source_dtype: np.dtype, predictor: TilePredictor,
                opts: PredictOptions) -> tuple[np.ndarray, list]:
    """Scale, tile-predict and paint one raw ``(C, H, W)`` image.

    Args:
        image: raw intensities ``(C, H, W)``.
        source_dtype: the pixel type stored in the file (for ``dtype_max`` scaling).
        predictor: per-tile predictor.
        opts: run settings.

    Returns:
        ``(labels (H, W) uint16/uint32, painted detections)``; detection ``k`` is label
        ``k + 1``.
    """
    (_, dets), = _tiled([_tiler_input(None, image, source_dtype, opts)], predictor, opts)
    return paint_labels(dets, image.shape[1], image.shape[2])


def predict_and_write(
    inputs: Sequence[InputImage], predictor: TilePredictor, out_dir: str | os.PathLike,
    opts: PredictOptions,
) -> dict[str, Any]:
    """Predict every input image and write label images, overlays and the json.

    Every file is written atomically (temporary name + rename). ``opts.workers``
    processes read the next images while the model runs; ``opts.batch_size`` windows
    (of one image or of consecutive images) share a forward.

    Args:
        inputs: images from :func:`dama_det.inference.inputs.collect_inputs`.
        predictor: per-tile predictor (e.g. ``MaskRCNNTilePredictor``).
        out_dir: output folder (created by the first file written).
        opts: run settings.

    Returns:
        The predictions dict written to ``out_dir/predictions.json``: ``info``,
        ``images`` (``id, file_name`` relative to ``out_dir``, ``height, width,
        channels, masks_file``), ``categories``, ``annotations`` (COCO results).

    Raises:
        DamaUserError: an image cannot be read (images before it may be written).
    """
    out = Path(out_dir)  # created by the first write
    images: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    dataset = PredictImageDataset(inputs, opts.num_channels, opts.intensity_scaling,
                                  opts.percentile_range)
    loaded = (_tiler_input(img, img.image, img.source_dtype, opts, img.scaled)
              for img in load_images(dataset, opts.workers))
    for img, merged in tqdm(_tiled(loaded, predictor, opts), total=len(inputs),
                            desc="predict", unit="img", disable=not opts.progress, delay=1.0):
        item = img.item
        c, h, w = img.image.shape
        labels, dets = paint_labels(merged, h, w)
        masks_name = f"{item.stem}{MASKS_SUFFIX}"
        write_label_image(out / masks_name, labels)
        if opts.overlay:
            write_png(out / f"{item.stem}{OVERLAY_SUFFIX}", render_overlay(img.image, labels))
        results.extend(detections_to_coco_results(dets, item.image_id, h, w,
                                                  start_id=len(results) + 1))
        images.append({
            "id": item.image_id,
            "file_name": Path(os.path.relpath(item.path.resolve(), out.resolve())).as_posix(),
            "height": h, "width": w, "channels": c,
            "masks_file": masks_name, "num_instances": len(dets),
        })
        del img, labels, dets, merged
    predictions = {
        "info": {"description": "dama-det predict results", **opts.info,
                 "tile_size": opts.tile_size, "overlap": opts.overlap,
                 "seconds": round(time.perf_counter() - start, 3)},
        "images": images,
        "categories": [dict(CATEGORY)],
        "annotations": results,
    }
    atomic_write_json(out / PREDICTIONS_JSON, predictions, indent=None)
    return predictions
