"""A tiny synthetic COCO data set of bright disks (N-channel OME-TIFFs + RLE json) for
the training tests - simple, fast and learnable in a few hundred iterations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dama_det.data.coco_labels import label_image_to_annotations
from dama_det.data.tiff_io import write_ome_tiff


def disk_label_image(rng: np.random.Generator, size: int, n_cells: int, radius=(6, 11)):
    """Non-overlapping disks as an int32 label image ``(size, size)``."""
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    placed = 0
    for _ in range(n_cells * 30):
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if (labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 2) ** 2] > 0).any():
            continue
        placed += 1
        labels[disk] = placed
        if placed == n_cells:
            break
    return labels


def make_disk_coco(root: Path, split: str, *, n_images=2, size=128, channels=7, n_cells=8,
                   seed=0) -> Path:
    """Write ``root/split/*.ome.tif`` (uint16) and ``root/split.json``; return the json."""
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n_images):
        labels = disk_label_image(rng, size, n_cells)
        image = rng.normal(2000, 300, (channels, size, size))
        image[:, labels > 0] += 30000  # bright cells in every channel
        name = f"{split}/img{i}.ome.tif"
        write_ome_tiff(root / name, np.clip(image, 0, 65535).astype(np.uint16))
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size,
                       "channels": channels})
        annotations += label_image_to_annotations(labels, i + 1, start_id=len(annotations) + 1)
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "cell"}]}
    path = root / f"{split}.json"
    path.write_text(json.dumps(coco))
    return path
