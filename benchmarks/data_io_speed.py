"""Speed of the N-channel data path on one dense image (hundreds of cells).

Measures, on a synthetic 7-channel uint16 512 x 512 tile with ~400 touching cells:
label image -> COCO annotations, COCO -> label image, and NChannelDatasetMapper per
image in training (LSJ 256 + flips + rot90) and inference (scaling only). Prints
milliseconds per image. Run: ``.venv/bin/python benchmarks/data_io_speed.py``
(large images: ``--size 2048 --cells 3000 --repeats 2``).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _tile(size: int, n_cells: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Touching Voronoi cells with background holes, and a 7-channel image of them."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), np.int32)
    ys, xs = rng.integers(0, size, n_cells), rng.integers(0, size, n_cells)
    seeds[ys, xs] = np.arange(1, n_cells + 1)
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iy, ix]
    labels[ndimage.distance_transform_edt(seeds == 0) > 9] = 0
    image = rng.integers(0, 4000, (7, size, size)).astype(np.uint16)
    image[:, labels > 0] += 20000
    return labels, image


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="tile side (px)")
    parser.add_argument("--cells", type=int, default=400, help="number of cell seeds")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from detectron2.data import DatasetCatalog

    from dama_det.config import get_dama_cfg
    from dama_det.data.coco_labels import (
        annotations_to_label_image,
        folder_to_coco,
        label_image_to_annotations,
    )
    from dama_det.data.mapper import NChannelDatasetMapper
    from dama_det.data.register import register_nchannel_coco
    from dama_det.data.tiff_io import write_label_image, write_ome_tiff
    from dama_det.utils import atomic_write_json

    labels, image = _tile(args.size, args.cells)
    n = len(np.unique(labels)) - 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_ome_tiff(tmp / "tile.ome.tif", image)
        write_label_image(tmp / "tile_masks.tif", labels)
        gt = tmp / "gt.json"
        atomic_write_json(gt, folder_to_coco(tmp, progress=False))
        register_nchannel_coco("bench_data_io", gt)
        (record,) = DatasetCatalog.get("bench_data_io")
        anns = label_image_to_annotations(labels, 1)
        cfg = get_dama_cfg()
        cfg.MODEL.MASK_ON = True
        train = NChannelDatasetMapper(cfg, is_train=True)
        test = NChannelDatasetMapper(cfg, is_train=False)
        np.random.seed(0)
        rows = [
            ("label image -> COCO annotations",
             _time(lambda: label_image_to_annotations(labels, 1), args.repeats)),
            ("COCO annotations -> label image",
             _time(lambda: annotations_to_label_image(anns, *labels.shape), args.repeats)),
            ("mapper, training (LSJ 256, flips, rot90)", _time(lambda: train(record),
                                                               args.repeats)),
            ("mapper, inference (read + scale)", _time(lambda: test(record), args.repeats)),
        ]
    print(f"data_io_speed: 7 x {args.size} x {args.size} uint16 tile, {n} instances")
    for name, ms in rows:
        print(f"  {name:42s} {ms:8.1f} ms/image")


if __name__ == "__main__":
    main()
