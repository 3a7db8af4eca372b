"""Instance label images <-> COCO instance annotations (compressed RLE masks).

A label image is an integer ``(H, W)`` array: 0 = background, 1..N one instance each
(cellpose / stardist / napari). Each instance becomes one COCO annotation with a
compressed RLE ``segmentation`` (``counts`` a str), a tight ``bbox`` (XYWH), its
``area`` (pixel count), ``iscrowd`` 0, and ``label``: the instance's value in the label
image, so that the conversion back gives the identical label image even with
non-contiguous ids.

Folders follow cellpose's convention: ``<name>.tif`` (or ``.ome.tif``) holds the image
and ``<name>_masks.tif`` its label image.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from ..errors import DamaUserError
from .rle import encode_crop_rle, paint_segmentations
from .tiff_io import read_label_image, read_tiff, write_label_image

CELL_CATEGORY = {"id": 1, "name": "cell", "supercategory": "cell"}
MASK_SUFFIX = "_masks"
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")


def _check_label_image(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label image must be 2-D, got shape {labels.shape}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"a label image must hold integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("a label image must not hold negative labels")
    return labels


def _instance_slices(
    labels: np.ndarray,
) -> tuple[np.ndarray, list[tuple[slice, slice]], np.ndarray]:
    """Label ids present (sorted, > 0), their bounding slices, and a compact label image."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size and int(ids[-1]) > 4 * ids.size + 1024:
        # Sparse, large ids: relabel to 1..K so find_objects stays small.
        compact = np.searchsorted(np.concatenate([[0], ids]), labels).astype(np.int32)
    else:
        compact = labels
    found = ndimage.find_objects(compact)
    if compact is labels:
        slices = [found[int(i) - 1] for i in ids]
    else:
        slices = list(found)
    return ids, slices, compact


def label_image_to_annotations(
    labels: np.ndarray,
    image_id: int,
    *,
    start_id: int = 1,
    category_id: int = 1,
    scores: Sequence[float] | Mapping[int, float] | None = None,
) -> list[dict[str, Any]]:
    """Convert a label image into COCO instance annotations.

    Args:
        labels: integer ``(H, W)``, 0 = background, 1..N instances (ids need not be
            contiguous).
        image_id: the COCO image id of every annotation.
        start_id: annotation id of the first instance (ground truth only).
        category_id: COCO category of every instance.
        scores: if given, produce COCO *results* entries (with ``"score"``, without
            ``"id"``/``"iscrowd"``): one score per instance in increasing label order,
            or a mapping ``{label: score}``.

    Returns:
        One dict per instance, in increasing label order, with ``image_id``,
        ``category_id``, ``segmentation`` (compressed RLE, ``counts`` str), ``bbox``
        (XYWH, floats), ``area`` (int), ``label`` and either ``id``/``iscrowd`` or
        ``score``.
    """
    labels = _check_label_image(labels)
    height, width = labels.shape
    ids, slices, compact = _instance_slices(labels)
    if scores is not None:
        if isinstance(scores, Mapping):
            missing = [int(i) for i in ids if int(i) not in scores]
            if missing:
                raise ValueError(f"scores lack labels {missing[:10]}")
            score_list = [float(scores[int(i)]) for i in ids]
        else:
            score_list = [float(s) for s in scores]
            if len(score_list) != len(ids):
                raise ValueError(
                    f"{len(score_list)} scores for {len(ids)} instances in the label image"
                )
    # Each instance is encoded from its bounding-box crop: O(crop), not O(H * W).
    annotations: list[dict[str, Any]] = []
    for k, (label, sl) in enumerate(zip(ids, slices)):
        key = k + 1 if compact is not labels else int(label)
        region = compact[sl] == key
        y0, x0 = sl[0].start, sl[1].start
        rle = encode_crop_rle(region, x0, y0, height, width)
        ann: dict[str, Any] = {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "segmentation": rle,
            "bbox": [float(x0), float(y0), float(sl[1].stop - x0), float(sl[0].stop - y0)],
            "area": int(region.sum()),
            "label": int(label),
        }
        if scores is None:
            ann["id"] = int(start_id) + k
            ann["iscrowd"] = 0
        else:
            ann["score"] = score_list[k]
        annotations.append(ann)
    return annotations


def annotations_to_label_image(
    annotations: Iterable[Mapping[str, Any]], height: int, width: int
) -> np.ndarray:
    """Paint COCO instance annotations into a label image.

    Each annotation gets its ``label`` value when every annotation carries a distinct
    one (as written by :func:`label_image_to_annotations`), else 1..N in list order.
    Where instances overlap, the one painted last wins: annotations are painted in list
    order, or, when they carry ``"score"``, in increasing score order (the
    highest-score instance wins; equal scores keep list order).

    Args:
        annotations: COCO annotations (or results) of one image.
        height: image height.
        width: image width.

    Returns:
        int32 ``(height, width)`` label image, 0 = background.
    """
    anns = list(annotations)
    if not anns:
        return np.zeros((height, width), dtype=np.int32)
    label_values = [a.get("label") for a in anns]
    if all(isinstance(v, (int, np.integer)) and v > 0 for v in label_values) and len(
        set(int(v) for v in label_values)
    ) == len(anns):
        values = [int(v) for v in label_values]
    else:
        values = list(range(1, len(anns) + 1))
    order = list(range(len(anns)))
    if all("score" in a for a in anns):
        order.sort(key=lambda i: float(anns[i]["score"]))  # stable: ties keep list order
    labels, _ = paint_segmentations(
        [anns[i]["segmentation"] for i in order], height, width, [values[i] for i in order]
    )
    return labels


# ----------------------------------------------------------------------------- json


def _require(obj: Any, key: str, where: str, path: Path, types: type | tuple) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DamaUserError(f"{path}: {where} has no key {key!r}")
    value = obj[key]
    if not isinstance(value, types) or isinstance(value, bool) and types is not bool:
        raise DamaUserError(
            f"{path}: {where}[{key!r}] has type {type(value).__name__}, expected "
            f"{getattr(types, '__name__', None) or '/'.join(t.__name__ for t in types)}"
        )
    return value


def validate_coco_dict(data: Any, path: str | os.PathLike = "<coco>") -> dict:
    """Check the structure of a COCO instances dict; raise a clear error naming the key.

    Args:
        data: the parsed json.
        path: shown in error messages.

    Returns:
        ``data`` (unchanged).

    Raises:
        DamaUserError: a missing key, a wrong type, duplicate image ids, or an
            annotation whose ``image_id`` names no image.
    """
    path = Path(path)
    if not isinstance(data, dict):
        raise DamaUserError(f"{path}: expected a COCO json object, got {type(data).__name__}")
    images = _require(data, "images", "the top level", path, list)
    annotations = _require(data, "annotations", "the top level", path, list)
    if "categories" in data and not isinstance(data["categories"], list):
        raise DamaUserError(f"{path}: 'categories' must be a list")
    ids: set[int] = set()
    for i, img in enumerate(images):
        where = f"images[{i}]"
        image_id = _require(img, "id", where, path, int)
        _require(img, "file_name", where, path, str)
        for key in ("height", "width"):
            if _require(img, key, where, path, int) <= 0:
                raise DamaUserError(f"{path}: {where}[{key!r}] must be positive")
        if image_id in ids:
            raise DamaUserError(f"{path}: {where} repeats image id {image_id}")
        ids.add(image_id)
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        image_id = _require(ann, "image_id", where, path, int)
        if image_id not in ids:
            raise DamaUserError(f"{path}: {where}['image_id'] = {image_id} names no image")
        _require(ann, "segmentation", where, path, (dict, list))
        bbox = _require(ann, "bbox", where, path, list)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise DamaUserError(f"{path}: {where}['bbox'] must be 4 numbers [x, y, w, h]")
        segm = ann["segmentation"]
        if isinstance(segm, dict) and ("counts" not in segm or "size" not in segm):
            raise DamaUserError(f"{path}: {where}['segmentation'] RLE needs 'counts' and 'size'")
    return data


def load_coco_json(path: str | os.PathLike) -> dict:
    """Read and validate a COCO instances json.

    Args:
        path: the json file.

    Returns:
        The parsed dict (``images``, ``annotations``, ``categories``...).

    Raises:
        DamaUserError: missing file, invalid JSON (with line/column), or a malformed
            structure (naming the key).
    """
    path = Path(path)
    if not path.is_file():
        raise DamaUserError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DamaUserError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamaUserError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    return validate_coco_dict(data, path)


# -------------------------------------------------------------------------- folders


def split_image_name(path: str | os.PathLike) -> tuple[str, str] | None:
    """``("cell_01", ".ome.tif")`` for ``cell_01.ome.tif``; None for a non-TIFF name."""
    name = Path(path).name
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return None


def find_image_mask_pairs(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """List ``(image, masks)`` pairs of a cellpose-style folder, sorted by name.

    Raises:
        DamaUserError: the folder is missing or holds no images, an image has no
            ``<name>_masks.tif`` or a mask file has no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DamaUserError(f"{folder}: no such folder")
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        parts = split_image_name(entry)
        if parts is None:
            continue
        stem = parts[0]
        if stem.endswith(MASK_SUFFIX):
            target, key = masks, stem[: -len(MASK_SUFFIX)]
        else:
            target, key = images, stem
        if key in target:
            raise DamaUserError(f"{entry}: two files for {key!r} ({target[key].name})")
        target[key] = entry
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DamaUserError(f"{masks[orphans[0]]}: mask file without an image <{orphans[0]}>.tif")
    unlabelled = sorted(set(images) - set(masks))
    if unlabelled:
        img = images[unlabelled[0]]
        raise DamaUserError(f"{img}: image without a mask file {unlabelled[0]}{MASK_SUFFIX}.tif")
    if not images:
        raise DamaUserError(f"{folder}: no <name>.tif + <name>{MASK_SUFFIX}.tif pairs found")
    return [(images[k], masks[k]) for k in sorted(images)]


def folder_to_coco(
    folder: str | os.PathLike,
    *,
    progress: bool = True,
    relative_to: str | os.PathLike | None = None,
    expected_channels: int | None = None,
) -> dict:
    """Build a COCO instances dict from a folder of image / label-image pairs.

    Args:
        folder: holds ``<name>.tif`` (or ``.ome.tif``) and ``<name>_masks.tif``.
        progress: show a tqdm progress bar.
        relative_to: ``file_name`` entries are relative to this folder (the json's
            folder); default ``folder``.
        expected_channels: if given, every image must have this many channels.

    Returns:
        COCO dict: ``images`` (``id``, ``file_name``, ``height``, ``width``,
        ``channels``), ``annotations`` (see :func:`label_image_to_annotations`),
        ``categories`` (one, ``cell``), ``info``, ``licenses``.

    Raises:
        DamaUserError: unpaired files, unreadable images, shape mismatches.
    """
    folder = Path(folder)
    pairs = find_image_mask_pairs(folder)
    base = Path(relative_to) if relative_to is not None else folder
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, (img_path, mask_path) in enumerate(
        tqdm(pairs, desc="to-coco", unit="img", disable=not progress), start=1
    ):
        img = read_tiff(img_path, expected_channels)
        labels = read_label_image(mask_path)
        c, h, w = img.image.shape
        if labels.shape != (h, w):
            raise DamaUserError(
                f"{mask_path}: label image is {labels.shape[0]}x{labels.shape[1]} but "
                f"{img_path.name} is {h}x{w}"
            )
        file_name = Path(os.path.relpath(img_path.resolve(), base.resolve())).as_posix()
        images.append(
            {"id": image_id, "file_name": file_name, "height": h, "width": w, "channels": c}
        )
        annotations.extend(
            label_image_to_annotations(labels, image_id, start_id=len(annotations) + 1)
        )
    return {
        "info": {"description": f"instances converted from {folder.name}", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(CELL_CATEGORY)],
    }


def coco_to_folder(
    coco_json: str | os.PathLike | dict,
    out_dir: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    copy_images: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Write one ``<name>_masks.tif`` label image per COCO image (cellpose layout).

    Label values come from the annotations' ``label`` keys when present (exact round
    trip of :func:`folder_to_coco`), else 1..N; see :func:`annotations_to_label_image`.

    Args:
        coco_json: path of a COCO instances json, or the dict itself.
        out_dir: output folder (created).
        image_root: folder that ``file_name`` is relative to; default the json's folder
            (the current folder for a dict).
        copy_images: also copy each image file into ``out_dir`` (unless it is there).
        progress: show a tqdm progress bar.

    Returns:
        The written label-image paths.

    Raises:
        DamaUserError: malformed json, a missing image (with ``copy_images``), or two
            images with the same name.
    """
    if isinstance(coco_json, dict):
        data = validate_coco_dict(coco_json)
        default_root = Path.cwd()
    else:
        data = load_coco_json(coco_json)
        default_root = Path(coco_json).resolve().parent
    root = Path(image_root) if image_root is not None else default_root
    out_dir = Path(out_dir)
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    seen: dict[str, str] = {}
    plan = []
    for img in data["images"]:
        src = root / img["file_name"]
        parts = split_image_name(src)
        stem, suffix = parts if parts else (Path(img["file_name"]).stem, ".tif")
        if stem in seen:
            raise DamaUserError(
                f"{img['file_name']}: same name as {seen[stem]}; cannot write both to {out_dir}"
            )
        seen[stem] = img["file_name"]
        if copy_images and not src.is_file():
            raise DamaUserError(f"{src}: no such image (set image_root / --image-root)")
        plan.append((img, src, stem, suffix))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for img, src, stem, suffix in tqdm(plan, desc="from-coco", unit="img", disable=not progress):
        try:
            labels = annotations_to_label_image(by_image[img["id"]], img["height"], img["width"])
        except ValueError as exc:
            raise DamaUserError(f"{img['file_name']}: bad annotation ({exc})") from None
        written.append(write_label_image(out_dir / f"{stem}{MASK_SUFFIX}.tif", labels))
        dst = out_dir / f"{stem}{suffix}"
        if copy_images and not (dst.exists() and dst.resolve() == src.resolve()):
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    return written
