"""Register COCO-json datasets of N-channel TIFF images with Detectron2.

The images stay N-channel TIFFs (read later by
:class:`dama_det.data.mapper.NChannelDatasetMapper`); masks stay compressed RLE.
"""
from __future__ import annotations

import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..errors import DamaUserError
from .coco_labels import load_coco_json


def load_nchannel_coco_dicts(
    json_file: str | os.PathLike, image_root: str | os.PathLike | None = None
) -> list[dict]:
    """Read a COCO instances json into Detectron2 dataset dicts.

    Args:
        json_file: COCO json (``file_name`` relative to ``image_root``).
        image_root: folder of the images; default the json's folder.

    Returns:
        One dict per image: ``file_name`` (absolute), ``height``, ``width``,
        ``image_id``, ``channels`` (if in the json) and ``annotations`` (``bbox`` XYWH_ABS,
        ``bbox_mode``, ``segmentation`` RLE dict, ``category_id`` 0-based, ``iscrowd``).
    """
    json_file = Path(json_file)
    data = load_coco_json(json_file)
    root = Path(image_root) if image_root is not None else json_file.resolve().parent
    id_map = _category_id_map(data)
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in data["images"]}
    for i, ann in enumerate(data["annotations"]):
        if ann.get("category_id", 1) not in id_map:
            raise DamaUserError(
                f"{json_file}: annotations[{i}]['category_id'] = {ann.get('category_id')} "
                "is not among the categories"
            )
        by_image[ann["image_id"]].append(ann)
    dicts = []
    for img in data["images"]:
        record = {
            "file_name": str((root / img["file_name"]).resolve()),
            "height": img["height"],
            "width": img["width"],
            "image_id": img["id"],
        }
        if "channels" in img:
            record["channels"] = img["channels"]
        record["annotations"] = [
            {
                "bbox": [float(v) for v in ann["bbox"]],
                "bbox_mode": BoxMode.XYWH_ABS,
                "segmentation": ann["segmentation"],
                "category_id": id_map[ann.get("category_id", 1)],
                "iscrowd": int(ann.get("iscrowd", 0)),
            }
            for ann in by_image[img["id"]]
        ]
        dicts.append(record)
    return dicts


def _category_id_map(data: dict) -> dict[int, int]:
    """COCO category id -> contiguous 0-based id (one ``cell`` class if none listed)."""
    cats = data.get("categories") or [{"id": 1, "name": "cell"}]
    return {int(c["id"]): i for i, c in enumerate(sorted(cats, key=lambda c: int(c["id"])))}


def register_nchannel_coco(
    name: str, json_file: str | os.PathLike, image_root: str | os.PathLike | None = None
) -> None:
    """Register ``name`` in Detectron2's DatasetCatalog / MetadataCatalog.

    Calling it again with the same name replaces the earlier registration (no error).
    The json is checked to exist now and read when the dataset is first used.

    Args:
        name: dataset name (e.g. ``"cells_train"``).
        json_file: COCO instances json.
        image_root: folder ``file_name`` is relative to; default the json's folder.

    Raises:
        DamaUserError: the json file is missing.
    """
    json_file = Path(json_file).resolve()
    if not json_file.is_file():
        raise DamaUserError(f"{json_file}: no such COCO json (dataset {name!r})")
    root = Path(image_root).resolve() if image_root is not None else json_file.parent
    data = load_coco_json(json_file)
    cats = data.get("categories") or [{"id": 1, "name": "cell"}]
    cats = sorted(cats, key=lambda c: int(c["id"]))
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: load_nchannel_coco_dicts(json_file, root))
    MetadataCatalog.get(name).set(
        thing_classes=[str(c.get("name", "cell")) for c in cats],
        thing_dataset_id_to_contiguous_id=_category_id_map(data),
        json_file=str(json_file),
        image_root=str(root),
        evaluator_type="coco",
    )
