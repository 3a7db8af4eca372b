"""Synthetic brain-tissue dataset: files, determinism, COCO validity, image statistics."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dama_det.data.synth import (
    CELL_TYPES,
    CHANNEL_NAMES,
    MARKER_OF_TYPE,
    generate_crops,
    generate_dataset,
    render_tile,
)
from dama_det.data.tiff_io import read_image, read_label_image
from dama_det.errors import DamaUserError

SMALL = dict(n_train_tiles=1, n_val_tiles=1, tile_size=256, n_crops_per_type=9, crop_size=128)
MARKERS = [CHANNEL_NAMES.index(MARKER_OF_TYPE[t]) for t in CELL_TYPES]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "ds"
    paths = generate_dataset(out, seed=0, progress=False, **SMALL)
    return out, paths


def _tiles(root: Path) -> list[Path]:
    return sorted((root / "tiles").rglob("tile_*.ome.tif"))


def test_layout_and_meta(dataset):
    root, paths = dataset
    for split in ("train", "val"):
        assert (root / "tiles" / split / "tile_0000.ome.tif").is_file()
        assert (root / "tiles" / split / "tile_0000_masks.tif").is_file()
        assert paths[f"{split}_json"] == root / "tiles" / f"{split}.json"
        assert paths[f"{split}_json"].is_file()
    meta = json.loads((root / "meta.json").read_text())
    assert meta["channel_names"] == list(CHANNEL_NAMES)
    assert meta["cell_types"] == list(CELL_TYPES)
    assert meta["seed"] == 0
    assert meta["counts"]["tiles"] == {"train": 1, "val": 1}
    assert meta["counts"]["crops_per_type"] == {t: 9 for t in CELL_TYPES}
    # no staging folders left behind
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]
    image, names = read_image(root / "tiles" / "train" / "tile_0000.ome.tif")
    assert names == list(CHANNEL_NAMES)
    assert image.shape == (7, 256, 256)
    assert tifffile.imread(root / "tiles" / "train" / "tile_0000.ome.tif").dtype == np.uint16


def _all_arrays(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): tifffile.imread(p) for p in sorted(root.rglob("*.tif"))}


def test_same_seed_identical_other_seed_differs(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    generate_dataset(again, seed=0, progress=False, preview=False, **SMALL)
    a, b = _all_arrays(root), _all_arrays(again)
    assert a.keys() == b.keys() and len(a) == 4 + 5 * 9
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    for name in ("tiles/train.json", "tiles/val.json", "meta.json", "crops/labels.csv"):
        assert (root / name).read_bytes() == (again / name).read_bytes(), name

    other = tmp_path / "other"
    generate_dataset(other, seed=1, progress=False, preview=False, **SMALL)
    c = _all_arrays(other)
    for k in a:
        assert not np.array_equal(a[k], c[k]), k


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
def test_coco_json_valid(dataset):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    root, _ = dataset
    for split in ("train", "val"):
        json_path = root / "tiles" / f"{split}.json"
        coco = COCO(str(json_path))
        assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "cell"}]
        for img in coco.loadImgs(coco.getImgIds()):
            assert img["channels"] == 7 and img["height"] == img["width"] == 256
            assert img["file_name"] == f"{split}/tile_0000.ome.tif"
            assert (json_path.parent / img["file_name"]).is_file()
            labels = read_label_image(
                json_path.parent / img["file_name"].replace(".ome.tif", "_masks.tif"))
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
            assert len(anns) == labels.max() == len(np.unique(labels)) - 1
            ids = [a["id"] for a in anns]
            assert len(set(ids)) == len(ids)
            for ann in anns:
                assert isinstance(ann["segmentation"]["counts"], str)
                assert ann["iscrowd"] == 0 and ann["category_id"] == 1
                assert ann["cell_type"] in CELL_TYPES
                m = coco.annToMask(ann).astype(bool)
                assert ann["area"] == int(m.sum()) >= 20
                # each annotation is exactly one instance of the label image
                values = np.unique(labels[m])
                assert values.size == 1 and values[0] > 0
                assert np.array_equal(m, labels == values[0])
                x, y, w, h = mask_utils.toBbox(ann["segmentation"])
                assert np.allclose(ann["bbox"], [x, y, w, h])


def test_instance_counts_and_occlusion_rule():
    for index in range(2):
        tile = render_tile(512, seed=3, index=index)
        n = int(tile.labels.max())
        assert 150 <= n <= 330, n
        assert len(tile.cell_types) == n
        counts = np.bincount(tile.labels.ravel())[1:]
        assert counts.size == n and counts.min() >= 20  # occluded cells dropped, 1..N
        present = set(tile.cell_types)
        assert present == set(CELL_TYPES)


def test_marker_specificity_and_dapi_contrast():
    sums = {t: np.zeros(len(CHANNEL_NAMES)) for t in CELL_TYPES}
    npx = {t: 0 for t in CELL_TYPES}
    dapi_fg, dapi_bg = [], []
    for index in range(2):
        tile = render_tile(512, seed=5, index=index)
        img = tile.image.astype(np.float64)
        types = np.array(["bg"] + tile.cell_types)[tile.labels]
        for t in CELL_TYPES:
            m = types == t
            sums[t] += img[:, m].sum(1)
            npx[t] += int(m.sum())
        dapi_fg.append(img[0][tile.labels > 0].mean())
        dapi_bg.append(img[0][tile.labels == 0].mean())
    for t, ch in zip(CELL_TYPES, MARKERS):
        mean = sums[t] / npx[t]
        others = [mean[c] for c in MARKERS if c != ch]
        assert mean[ch] > 2.0 * max(others), (t, mean.round())
    assert min(dapi_fg) > 3.0 * max(dapi_bg)


def test_crops_centred_on_their_type(dataset):
    root, paths = dataset
    rows = list(csv.DictReader((root / "crops" / "labels.csv").open()))
    assert len(rows) == 5 * 9 == len(paths["crops"])
    assert {r["cell_type"] for r in rows} == set(CELL_TYPES)
    for t, ch in zip(CELL_TYPES, MARKERS):
        files = sorted((root / "crops" / t).glob("*.ome.tif"))
        assert [f.name for f in files] == [f"crop_{i:05d}.ome.tif" for i in range(9)]
        centre_wins = 0
        for f in files:
            raw = tifffile.imread(f)
            assert raw.shape == (7, 128, 128) and raw.dtype == np.uint16
            img, names = read_image(f)
            assert names == list(CHANNEL_NAMES)
            centre = img[:, 60:68, 60:68].mean((1, 2))
            assert centre[ch] > 1.5 * img[ch].mean()
            centre_wins += centre[ch] >= max(centre[c] for c in MARKERS)
        assert centre_wins >= 8, t  # the marker is the brightest marker at the centre


def test_preview_png(dataset):
    from PIL import Image

    root, paths = dataset
    png = root / "preview.png"
    assert paths["preview"] == png
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 100_000
    with Image.open(png) as im:
        assert im.mode == "RGB" and im.width > 500 and im.height > 500
        arr = np.asarray(im)
    assert arr.std() > 20  # a real picture, not a flat canvas


def test_generate_crops_alone_and_rerun(tmp_path):
    out = tmp_path / "crops"
    paths = generate_crops(out, n_per_type=2, crop_size=64, seed=4, progress=False)
    assert len(paths) == 10 and all(p.is_file() for p in paths)
    assert tifffile.imread(paths[0]).shape == (7, 64, 64)
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert [(r["file"], r["cell_type"]) for r in rows] == [
        (str(p.relative_to(out)), p.parent.name) for p in paths]
    first = tifffile.imread(paths[3])
    # re-running replaces an earlier crop folder; the first crops do not depend on n
    paths2 = generate_crops(out, n_per_type=1, crop_size=64, seed=4, progress=False)
    assert len(paths2) == 5 and len(list(out.rglob("*.ome.tif"))) == 5
    assert np.array_equal(tifffile.imread(out / "astrocyte" / "crop_00000.ome.tif"),
                          tifffile.imread(paths[2]))
    assert first.shape == (7, 64, 64)


def test_refuses_foreign_folder_and_bad_sizes(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    with pytest.raises(DamaUserError, match="not empty"):
        generate_dataset(foreign, n_train_tiles=1, n_val_tiles=0, tile_size=64,
                         n_crops_per_type=0, progress=False)
    assert (foreign / "thesis.txt").read_text() == "keep me"
    with pytest.raises(DamaUserError, match="tile_size"):
        generate_dataset(tmp_path / "x", tile_size=8, progress=False)
    with pytest.raises(DamaUserError, match="n_per_type"):
        generate_crops(tmp_path / "y", n_per_type=0)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
