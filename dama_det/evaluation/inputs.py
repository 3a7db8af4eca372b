"""Load and check evaluation inputs: a COCO ground truth and COCO results lists.

Every user mistake becomes a :class:`~dama_det.errors.DamaUserError` naming the file
and the entry: results for an image id the ground truth lacks, an unknown category
id, a malformed RLE (its run lengths must add up to ``height * width`` - pycocotools
would otherwise write past its buffer), a missing score, an empty results list. The
segmentation checks are :func:`dama_det.data.rle.normalize_segmentation` and
:func:`~dama_det.data.rle.check_rle_runs`.

Results may also be a folder of label images (cellpose / stardist / napari output,
one ``<image name>[_cp]_masks.tif`` per ground-truth image): each instance becomes a
result with score 1 (see :func:`label_folder_to_results`).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_util

from ..data.rle import check_rle_runs, normalize_segmentation, pycocotools_rle
from ..errors import DamaUserError

ResultsSource = str | os.PathLike | Sequence[Mapping[str, Any]]
GroundTruthSource = str | os.PathLike | Mapping[str, Any]

#: File name endings tried, in order, for the label image of ``<stem>`` in a folder.
LABEL_FILE_PATTERNS = (
    "{stem}_cp_masks.tif", "{stem}_cp_masks.tiff", "{stem}_masks.tif", "{stem}_masks.tiff",
    "{stem}_labels.tif", "{stem}_label.tif", "{stem}.tif", "{stem}.tiff",
)


_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _check_bbox(bbox: Any, where: str) -> list[float]:
    if type(bbox) in (list, tuple) and len(bbox) == 4:
        out = [float(v) for v in bbox if isinstance(v, _NUMBER_TYPES) and not isinstance(v, bool)]
        if len(out) == 4 and math.isfinite(sum(out)) and out[2] >= 0 and out[3] >= 0:
            return out
    raise DamaUserError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w>=0, h>=0]")


def load_ground_truth(source: GroundTruthSource) -> dict[str, Any]:
    """Read, check and normalise a COCO ground truth.

    Args:
        source: a COCO json path, a folder of image / ``_masks`` pairs (converted with
            :func:`dama_det.data.coco_labels.folder_to_coco`), or a COCO dict.

    Returns:
        A new COCO dict whose annotations all have ``id``, ``iscrowd``, ``area`` and a
        compressed-RLE (str counts) or absent ``segmentation``; categories are present.

    Raises:
        DamaUserError: see :func:`dama_det.data.coco_labels.validate_coco_dict`, plus
            missing categories, unknown category ids and malformed masks.
    """
    from ..data.coco_labels import folder_to_coco, load_coco_json, validate_coco_dict

    if isinstance(source, Mapping):
        name = "<ground truth>"
        data = validate_coco_dict(dict(source), name)
    else:
        path = Path(source)
        name = str(path)
        data = folder_to_coco(path, progress=False) if path.is_dir() else load_coco_json(path)
    cats = data.get("categories") or []
    if not cats or not all(isinstance(c, dict) and isinstance(c.get("id"), int) for c in cats):
        raise DamaUserError(f"{name}: 'categories' must be a non-empty list of {{id, name}}")
    cat_ids = {c["id"] for c in cats}
    sizes = {img["id"]: (img["height"], img["width"]) for img in data["images"]}
    annotations = []
    used_ids = {a["id"] for a in data["annotations"] if isinstance(a.get("id"), int)}
    next_id = max(used_ids, default=0) + 1
    seen: set[int] = set()
    rles: list[dict] = []
    wheres: list[str] = []
    for i, ann in enumerate(data["annotations"]):
        where = f"{name}: annotations[{i}]"
        if ann.get("category_id") not in cat_ids:
            raise DamaUserError(
                f"{where}: category_id {ann.get('category_id')!r} is not among the "
                f"categories {sorted(cat_ids)}"
            )
        out = dict(ann)
        if not isinstance(out.get("id"), int) or out["id"] in seen:
            out["id"] = next_id
            next_id += 1
        seen.add(out["id"])
        height, width = sizes[ann["image_id"]]
        out["bbox"] = _check_bbox(ann["bbox"], where)
        out["iscrowd"] = int(ann.get("iscrowd", 0) or 0)
        if "segmentation" in ann and ann["segmentation"] not in (None, [], {}):
            out["segmentation"] = normalize_segmentation(ann["segmentation"], height, width, where)
            rles.append(out["segmentation"])
            wheres.append(where)
        else:
            out.pop("segmentation", None)
            if not isinstance(ann.get("area"), (int, float)):
                out["area"] = out["bbox"][2] * out["bbox"][3]
        annotations.append(out)
    check_rle_runs(rles, wheres)
    for ann in annotations:
        if not isinstance(ann.get("area"), (int, float)):
            ann["area"] = float(mask_util.area(pycocotools_rle(ann["segmentation"])))
    result = {k: v for k, v in data.items() if k != "annotations"}
    result["annotations"] = annotations
    return result


def _read_results_file(path: Path) -> list:
    if not path.is_file():
        raise DamaUserError(f"{path}: no such results file or folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DamaUserError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamaUserError(f"{path}: cannot read ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return data["annotations"]
    if not isinstance(data, list):
        raise DamaUserError(
            f"{path}: COCO results must be a list of detections, got {type(data).__name__}"
        )
    return data


def label_folder_to_results(folder: str | os.PathLike, gt: Mapping[str, Any]) -> list[dict]:
    """Turn a folder of label images (one per ground-truth image) into COCO results.

    For a ground-truth image ``sub/abc.ome.tif`` the folder must hold one of
    ``abc_cp_masks.tif`` (cellpose), ``abc_masks.tif``, ``abc_labels.tif`` or
    ``abc.tif`` (stardist). Every instance gets score 1.

    Args:
        folder: the label-image folder.
        gt: the ground-truth COCO dict (its ``images`` give ids, names and sizes).

    Returns:
        COCO results (``image_id``, ``category_id`` = the first category,
        ``segmentation`` RLE, ``bbox``, ``score`` 1.0).

    Raises:
        DamaUserError: a ground-truth image has no label image, or its size differs.
    """
    from ..data.coco_labels import label_image_to_annotations, split_image_name
    from ..data.tiff_io import read_label_image

    folder = Path(folder)
    category_id = gt["categories"][0]["id"]
    results: list[dict] = []
    for img in gt["images"]:
        split = split_image_name(img["file_name"])
        stem = split[0] if split else Path(img["file_name"]).stem
        candidates = [folder / pattern.format(stem=stem) for pattern in LABEL_FILE_PATTERNS]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DamaUserError(
                f"{folder}: no label image for ground-truth image {img['file_name']!r} "
                f"(looked for {', '.join(c.name for c in candidates[::2])})"
            )
        labels = read_label_image(found)
        if labels.shape != (img["height"], img["width"]):
            raise DamaUserError(
                f"{found}: label image is {labels.shape[0]}x{labels.shape[1]} but image "
                f"{img['file_name']!r} is {img['height']}x{img['width']}"
            )
        n = int(np.count_nonzero(np.unique(labels)))
        for ann in label_image_to_annotations(
            labels, img["id"], category_id=category_id, scores=[1.0] * n
        ):
            ann.pop("label", None)
            ann.pop("area", None)
            results.append(ann)
    return results


def load_results(source: ResultsSource, gt: Mapping[str, Any], name: str) -> list[dict]:
    """Read and check one method's COCO results against the ground truth.

    Args:
        source: a results json (a list, or a dict with ``annotations``), a folder of
            label images, or a list of result dicts.
        gt: the normalised ground truth from :func:`load_ground_truth`.
        name: the method name (for messages).

    Returns:
        New result dicts with ``image_id``, ``category_id``, ``score`` (float) and
        ``bbox`` and/or ``segmentation`` (compressed RLE, str counts). Either every
        entry has a bbox or none has; the same for segmentations.

    Raises:
        DamaUserError: empty results, unknown image or category ids, malformed
            entries; the message names the method, source and entry index.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = f"{name} ({path})"
        raw = label_folder_to_results(path, gt) if path.is_dir() else _read_results_file(path)
    else:
        label = name
        raw = list(source)
    if not raw:
        raise DamaUserError(f"{label}: the results are empty (no detections to evaluate)")
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    has_bbox = has_segm = None
    results = []
    for i, det in enumerate(raw):
        where = f"{label}: entry {i}"
        if not isinstance(det, dict):
            raise DamaUserError(f"{where}: expected an object, got {type(det).__name__}")
        image_id = det.get("image_id")
        if image_id not in sizes:
            raise DamaUserError(
                f"{where}: image_id {image_id!r} is not in the ground truth "
                f"({len(sizes)} images, ids {min(sizes, default=None)}..{max(sizes, default=None)})"
            )
        if det.get("category_id") not in cat_ids:
            raise DamaUserError(
                f"{where}: category_id {det.get('category_id')!r} is not a ground-truth "
                f"category {sorted(cat_ids)}"
            )
        score = det.get("score")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not np.isfinite(score):
            raise DamaUserError(f"{where}: 'score' must be a finite number, got {score!r}")
        entry: dict[str, Any] = {
            "image_id": image_id, "category_id": det["category_id"], "score": float(score),
        }
        if has_bbox is None:
            has_bbox, has_segm = "bbox" in det, "segmentation" in det
            if not (has_bbox or has_segm):
                raise DamaUserError(f"{where}: a detection needs 'bbox' and/or 'segmentation'")
        if ("bbox" in det) != has_bbox or ("segmentation" in det) != has_segm:
            raise DamaUserError(
                f"{where}: every detection must have the same keys as the first "
                f"(bbox: {has_bbox}, segmentation: {has_segm})"
            )
        if has_bbox:
            entry["bbox"] = _check_bbox(det["bbox"], where)
        if has_segm:
            entry["segmentation"] = normalize_segmentation(
                det["segmentation"], *sizes[image_id], where
            )
        results.append(entry)
    if has_segm:
        check_rle_runs([r["segmentation"] for r in results],
                       [f"{label}: entry {i}" for i in range(len(results))])
    return results
