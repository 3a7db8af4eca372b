"""Label images <-> COCO json: exact round trips, folders, the ``dama-det data`` CLI."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pycocotools.mask as mask_util
import pytest
import tifffile
from scipy import ndimage

from dama_det.cli import main
from dama_det.data.coco_labels import (
    annotations_to_label_image,
    coco_to_folder,
    folder_to_coco,
    label_image_to_annotations,
    load_coco_json,
)
from dama_det.data.tiff_io import read_label_image, write_label_image, write_ome_tiff
from dama_det.errors import DamaUserError
from tests.helpers.label_images import random_label_image

# pycocotools' decode with numpy 2 (harmless, from inside pycocotools).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_label_image_round_trip_is_exact(seed):
    labels = random_label_image(seed, sparse_ids=seed % 2 == 0)
    ids = np.unique(labels)[1:]
    assert len(ids) > 100
    anns = label_image_to_annotations(labels, image_id=5, start_id=11)
    assert len(anns) == len(ids)
    assert [a["label"] for a in anns] == ids.tolist()
    assert [a["id"] for a in anns] == list(range(11, 11 + len(ids)))
    slices = ndimage.find_objects(labels)
    for ann in anns:
        label = ann["label"]
        assert ann["image_id"] == 5 and ann["category_id"] == 1 and ann["iscrowd"] == 0
        assert isinstance(ann["segmentation"]["counts"], str)
        assert ann["segmentation"]["size"] == list(labels.shape)
        mask = labels == label
        assert ann["area"] == int(mask.sum())
        sl = slices[label - 1]
        assert ann["bbox"] == [sl[1].start, sl[0].start, sl[1].stop - sl[1].start,
                               sl[0].stop - sl[0].start]
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_util.decode(rle), mask)
        np.testing.assert_allclose(mask_util.toBbox(rle), ann["bbox"])
    back = annotations_to_label_image(json.loads(json.dumps(anns)), *labels.shape)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)


def test_without_label_keys_instances_are_numbered_in_order():
    labels = random_label_image(7, n_cells=30)
    anns = label_image_to_annotations(labels, 1)
    for a in anns:
        del a["label"]
    back = annotations_to_label_image(anns, *labels.shape)
    # Same partition, ids 1..N in annotation (= increasing label) order.
    ids = np.unique(labels)[1:]
    expected = np.searchsorted(np.concatenate([[0], ids]), labels)
    np.testing.assert_array_equal(back, expected)


def test_huge_sparse_ids_and_empty_image():
    labels = np.zeros((10, 12), np.int64)
    labels[1:3, 1:4] = 2_000_000_000
    labels[5:9, 6:12] = 3
    anns = label_image_to_annotations(labels, 1)
    assert [a["label"] for a in anns] == [3, 2_000_000_000]
    assert [a["area"] for a in anns] == [24, 6]
    np.testing.assert_array_equal(annotations_to_label_image(anns, 10, 12), labels)
    assert label_image_to_annotations(np.zeros((4, 4), np.uint16), 1) == []
    np.testing.assert_array_equal(annotations_to_label_image([], 4, 4), 0)


def test_results_with_scores_and_overlap_rule():
    labels = np.zeros((8, 8), np.int32)
    labels[0:4, 0:4] = 1
    labels[4:8, 4:8] = 2
    res = label_image_to_annotations(labels, 3, scores=[0.9, 0.2])
    assert [r["score"] for r in res] == [0.9, 0.2]
    assert all("id" not in r and "iscrowd" not in r for r in res)
    res_map = label_image_to_annotations(labels, 3, scores={1: 0.1, 2: 0.7})
    assert [r["score"] for r in res_map] == [0.1, 0.7]
    with pytest.raises(ValueError, match="2 instances"):
        label_image_to_annotations(labels, 3, scores=[0.5])

    # Two overlapping squares: with scores the higher score wins, else the later one.
    a = np.zeros((8, 8), np.int32)
    a[0:5, 0:5] = 1
    b = np.zeros((8, 8), np.int32)
    b[3:8, 3:8] = 1
    ann_a = label_image_to_annotations(a, 1, scores=[0.9])[0]
    ann_b = label_image_to_annotations(b, 1, scores=[0.4])[0]
    for ann in (ann_a, ann_b):
        del ann["label"]
    out = annotations_to_label_image([ann_a, ann_b], 8, 8)
    assert out[4, 4] == 1  # a (0.9) beats b (0.4) though b comes later
    assert out[7, 7] == 2 and out[0, 0] == 1
    for ann in (ann_a, ann_b):
        del ann["score"]
    out = annotations_to_label_image([ann_a, ann_b], 8, 8)
    assert out[4, 4] == 2  # no scores: the later annotation wins


def test_uncompressed_rle_and_polygons_are_read():
    mask = np.zeros((6, 7), np.uint8, order="F")
    mask[1:4, 2:6] = 1
    rle = mask_util.encode(mask)
    counts = []  # uncompressed RLE: run lengths, column-major, starting with zeros
    flat = mask.flatten(order="F")
    value, run = 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    anns = [{"segmentation": {"size": [6, 7], "counts": counts}},
            {"segmentation": [[0.0, 0.0, 2.0, 0.0, 2.0, 1.0, 0.0, 1.0]]}]
    out = annotations_to_label_image(anns, 6, 7)
    np.testing.assert_array_equal(out == 1, mask_util.decode(rle).astype(bool))
    assert (out == 2).sum() > 0


def _make_folder(root, n=3, channels=7, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        labels = random_label_image(seed + i, shape=(64, 80), n_cells=40 + 60 * i)
        img = rng.integers(0, 65535, (channels, 64, 80)).astype(np.uint16)
        suffix = ".ome.tif" if i % 2 == 0 else ".tif"
        if suffix == ".ome.tif":
            write_ome_tiff(root / f"tile_{i}{suffix}", img)
        else:
            tifffile.imwrite(root / f"tile_{i}{suffix}", np.moveaxis(img, 0, -1))
        write_label_image(root / f"tile_{i}_masks.tif", labels)
    return root


def test_folder_to_coco_structure(tmp_path):
    folder = _make_folder(tmp_path / "data")
    coco = folder_to_coco(folder, progress=False)
    assert [im["file_name"] for im in coco["images"]] == [
        "tile_0.ome.tif", "tile_1.tif", "tile_2.ome.tif"]
    assert all(im["channels"] == 7 and im["height"] == 64 and im["width"] == 80
               for im in coco["images"])
    assert coco["categories"] == [{"id": 1, "name": "cell", "supercategory": "cell"}]
    per_image = [len(np.unique(read_label_image(folder / f"tile_{i}_masks.tif"))) - 1
                 for i in range(3)]
    counts = [sum(a["image_id"] == im["id"] for a in coco["annotations"])
              for im in coco["images"]]
    assert counts == per_image and max(counts) > 100
    assert [a["id"] for a in coco["annotations"]] == list(range(1, sum(counts) + 1))
    # pycocotools reads it and computes the same areas.
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = coco
    api.createIndex()
    ann = api.loadAnns(api.getAnnIds(imgIds=[2]))[5]
    assert api.annToMask(ann).sum() == ann["area"]


def test_cli_round_trip_folder_coco_folder(tmp_path, capsys):
    folder = _make_folder(tmp_path / "data")
    gt = tmp_path / "json" / "gt.json"
    assert main(["data", "to-coco", str(folder), "--out", str(gt), "--quiet"]) == 0
    assert "3 images" in capsys.readouterr().out
    coco = load_coco_json(gt)
    # file_name is relative to the json's folder.
    assert coco["images"][0]["file_name"] == "../data/tile_0.ome.tif"
    out = tmp_path / "back"
    assert main(["data", "from-coco", str(gt), "--out", str(out), "--quiet"]) == 0
    for i in range(3):
        np.testing.assert_array_equal(read_label_image(out / f"tile_{i}_masks.tif"),
                                      read_label_image(folder / f"tile_{i}_masks.tif"))
    assert (out / "tile_1.tif").read_bytes() == (folder / "tile_1.tif").read_bytes()
    # The written folder converts back to the same annotations.
    gt2 = tmp_path / "gt2.json"
    assert main(["data", "to-coco", str(out), "--out", str(gt2), "--quiet"]) == 0
    coco2 = load_coco_json(gt2)
    assert coco2["annotations"] == coco["annotations"]
    # Label images only, from a dict, with an explicit image root.
    only = coco_to_folder(coco, tmp_path / "only", image_root=gt.parent, copy_images=False,
                          progress=False)
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == [p.name for p in only]


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_bad_inputs_exit_2_with_one_error_line(tmp_path, capsys):
    folder = _make_folder(tmp_path / "data", n=2)
    gt = tmp_path / "gt.json"

    (folder / "tile_1_masks.tif").unlink()
    line = _cli_error(["data", "to-coco", str(folder), "--out", str(gt), "--quiet"], capsys)
    assert "tile_1.tif" in line and "without a mask file" in line
    assert not gt.exists()

    (folder / "tile_1.tif").unlink()
    write_label_image(folder / "extra_masks.tif", np.ones((4, 4), np.int32))
    line = _cli_error(["data", "to-coco", str(folder), "--out", str(gt), "--quiet"], capsys)
    assert "extra_masks.tif" in line and "without an image" in line
    (folder / "extra_masks.tif").unlink()

    (folder / "tile_0_masks.tif").write_bytes(b"garbage")
    line = _cli_error(["data", "to-coco", str(folder), "--out", str(gt), "--quiet"], capsys)
    assert "tile_0_masks.tif" in line and "cannot read as TIFF" in line
    write_label_image(folder / "tile_0_masks.tif", np.ones((10, 10), np.int32))
    line = _cli_error(["data", "to-coco", str(folder), "--out", str(gt), "--quiet"], capsys)
    assert "tile_0_masks.tif" in line and "10x10" in line and "64x80" in line
    line = _cli_error(["data", "to-coco", str(tmp_path / "nowhere"), "--out", str(gt)], capsys)
    assert "nowhere" in line and "no such folder" in line

    shutil.rmtree(folder)
    _make_folder(folder, n=1, channels=3)
    line = _cli_error(["data", "to-coco", str(folder), "--out", str(gt), "--channels", "7",
                       "--quiet"], capsys)
    assert "tile_0.ome.tif" in line and "3 channel(s) but 7" in line
    assert not gt.exists()

    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [}')
    line = _cli_error(["data", "from-coco", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert "bad.json" in line and "invalid JSON at line 1" in line
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.tif", "height": 4}],
                               "annotations": []}))
    line = _cli_error(["data", "from-coco", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert "bad.json" in line and "images[0]" in line and "'width'" in line
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.tif", "height": 4,
                                           "width": 4}],
                               "annotations": [{"image_id": 2, "bbox": [0, 0, 1, 1],
                                                "segmentation": {}}]}))
    line = _cli_error(["data", "from-coco", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert "annotations[0]['image_id'] = 2 names no image" in line
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DamaUserError, match="bad.json: the top level has no key 'images'"):
        load_coco_json(bad)
    line = _cli_error(["data", "from-coco", str(tmp_path / "none.json"), "--out", "x"], capsys)
    assert "none.json: no such file" in line


def test_data_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("to-coco", "from-coco", "synth", "crops"):
        assert name in out


def test_dsb2018_converts_through_to_coco(dsb2018_dir, tmp_path):
    masks = (dsb2018_dir / "train").glob("*_masks.tif")
    names = sorted(p.name[: -len("_masks.tif")] for p in masks)
    assert len(names) == 361
    folder = tmp_path / "dsb"
    folder.mkdir()
    for name in names[:4]:
        for suffix in (".tif", "_masks.tif"):
            shutil.copy(dsb2018_dir / "train" / f"{name}{suffix}", folder)
    gt = tmp_path / "dsb.json"
    assert main(["data", "to-coco", str(folder), "--out", str(gt), "--channels", "1",
                 "--quiet"]) == 0
    coco = load_coco_json(gt)
    assert len(coco["images"]) == 4 and all(im["channels"] == 1 for im in coco["images"])
    total = 0
    for im in coco["images"]:
        labels = read_label_image(tmp_path / im["file_name"].replace(".tif", "_masks.tif"))
        n = len(np.unique(labels)) - 1
        assert sum(a["image_id"] == im["id"] for a in coco["annotations"]) == n
        assert (im["height"], im["width"]) == labels.shape
        total += n
    assert len(coco["annotations"]) == total


def test_paint_segmentations_reports_full_areas_under_overlap():
    from dama_det.data.rle import paint_segmentations, segmentation_runs

    a = np.zeros((9, 7), np.int32)
    a[1:6, 1:5] = 1
    b = np.zeros((9, 7), np.int32)
    b[4:9, 3:7] = 1
    segs = [label_image_to_annotations(m, 1)[0]["segmentation"] for m in (a, b)]
    runs = segmentation_runs(segs, 9, 7)
    assert [int(r[1::2].sum()) for r in runs] == [20, 20] and all(r.sum() == 63 for r in runs)
    labels, areas = paint_segmentations(segs, 9, 7, values=[5, 9])
    assert areas.tolist() == [20, 20]
    np.testing.assert_array_equal(labels, np.where(b > 0, 9, np.where(a > 0, 5, 0)))
    assert (labels == 5).sum() < 20  # b, painted later, hides part of a
    with pytest.raises(ValueError, match="differs from the image size"):
        paint_segmentations(segs, 7, 9)


def _dense_label_image(seed: int, shape: tuple[int, int], n_cells: int,
                       sparse_ids: bool) -> np.ndarray:
    """Voronoi cells filling the whole image (every border touched), a few holes, and
    full-height stripes, whose runs continue from one image column into the next."""
    labels = random_label_image(seed, shape=shape, n_cells=n_cells, sparse_ids=sparse_ids)
    rng = np.random.default_rng(seed + 100)
    h, w = shape
    top = random_label_image(seed + 1, shape=shape, n_cells=n_cells, sparse_ids=False)
    labels[: h // 8] = top[: h // 8] + int(labels.max())  # refill the band: the top row too
    for k in range(3):
        x = int(rng.integers(0, w - 3))
        labels[:, x:x + int(rng.integers(1, 4))] = int(labels.max()) + 1 + k
    labels[0, 0] = labels[-1, -1] = int(labels.max()) + 1  # first and last pixels: one cell
    return labels


@pytest.mark.parametrize(
    "seed, shape, sparse_ids",
    [(0, (96, 128), False), (1, (97, 61), True), (2, (40, 300), True), (3, (128, 128), False)],
)
def test_rle_strings_are_byte_identical_to_pycocotools_full_masks(seed, shape, sparse_ids):
    labels = _dense_label_image(seed, shape, 160, sparse_ids)
    ids = np.unique(labels)[1:]
    assert len(ids) > 100
    h, w = shape
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        assert (side > 0).any()  # instances touch every border
    anns = label_image_to_annotations(labels, 1)
    assert [a["label"] for a in anns] == ids.tolist()
    for ann in anns:
        full = np.asfortranarray(labels == ann["label"], dtype=np.uint8)
        expected = mask_util.encode(full)
        assert ann["segmentation"]["counts"] == expected["counts"].decode("ascii")
        assert ann["segmentation"]["size"] == [h, w] == list(expected["size"])
        assert ann["area"] == int(full.sum())
    np.testing.assert_array_equal(annotations_to_label_image(anns, h, w), labels)


def test_encode_crop_rle_equals_full_image_encoding():
    from dama_det.data.rle import encode_crop_rle

    rng = np.random.default_rng(4)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        if rng.random() < 0.3:  # full-height crops: runs join across image columns
            y0, y1 = 0, h
        crop = rng.random((y1 - y0, x1 - x0)) < rng.choice([0.0, 0.3, 0.8, 1.0])
        full = np.zeros((h, w), np.uint8, order="F")
        full[y0:y1, x0:x1] = crop
        expected = mask_util.encode(full)["counts"].decode("ascii")
        assert encode_crop_rle(crop, x0, y0, h, w) == {"size": [h, w], "counts": expected}
        # any nonzero value is an instance pixel
        assert encode_crop_rle(crop.astype(np.uint8) * 7, x0, y0, h, w)["counts"] == expected
    assert encode_crop_rle(np.zeros((0, 3), bool), 1, 2, 5, 6)["counts"] == \
        mask_util.encode(np.zeros((5, 6), np.uint8, order="F"))["counts"].decode("ascii")
    with pytest.raises(ValueError, match="outside the 5x6 image"):
        encode_crop_rle(np.ones((2, 3), bool), 4, 0, 5, 6)
    with pytest.raises(ValueError, match="outside"):
        encode_crop_rle(np.ones((2, 3), bool), 0, -1, 5, 6)
    with pytest.raises(ValueError, match="must be 2-D"):
        encode_crop_rle(np.ones(3, bool), 0, 0, 5, 6)
