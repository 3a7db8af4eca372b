"""Prediction outputs: crop RLE == pycocotools RLE, label image <-> COCO results round
trips, overlays and input collection."""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from dama_det.data.coco_labels import annotations_to_label_image, label_image_to_annotations
from dama_det.data.tiff_io import read_label_image, write_label_image, write_ome_tiff
from dama_det.errors import DamaUserError
from dama_det.inference.inputs import collect_inputs
from dama_det.inference.merge import paint_labels
from dama_det.inference.outputs import crop_to_rle, detections_to_coco_results, render_overlay
from dama_det.inference.tiling import predict_image_tiled
from dama_det.inference.types import Detection
from tests.helpers.predict_fakes import blob_image, threshold_predictor


def test_crop_rle_equals_full_image_encoding():
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        crop = rng.random((y1 - y0, x1 - x0)) < rng.choice([0.2, 0.7, 1.0])
        full = np.zeros((h, w), np.uint8, order="F")
        full[y0:y1, x0:x1] = crop
        expected = mask_util.encode(full)["counts"].decode("ascii")
        assert crop_to_rle(Detection((x0, y0, x1, y1), crop, 1.0), h, w)["counts"] == expected


def test_label_image_to_results_to_label_image_exact():
    image, _ = blob_image(256, n_small=40, big=[(128, 128, 30, 70)], seed=5)
    dets = predict_image_tiled(image, threshold_predictor, tile_size=96, overlap=24)
    labels, painted = paint_labels(dets, 256, 256)
    results = detections_to_coco_results(painted, image_id=7, height=256, width=256)
    assert len(results) == labels.max() == len(dets)
    json.dumps(results)  # serialisable (counts are str)
    for r, d in zip(results, painted):
        assert r["image_id"] == 7 and r["category_id"] == 1 and r["score"] == round(d.score, 5)
        rle = {**r["segmentation"], "counts": r["segmentation"]["counts"].encode()}
        assert mask_util.area(rle) == r["area"]
    back = annotations_to_label_image(results, 256, 256)
    assert np.array_equal(back, labels)
    # same RLE as the data helper's whole-label-image conversion
    ref = label_image_to_annotations(labels, 7, scores=[d.score for d in painted])
    assert [a["segmentation"]["counts"] for a in ref] == [r["segmentation"]["counts"]
                                                          for r in results]
    assert [a["bbox"] for a in ref] == [r["bbox"] for r in results]


def test_label_tiff_round_trip(tmp_path):
    image, _ = blob_image(128, n_small=15, seed=2)
    labels, _ = paint_labels(predict_image_tiled(image, threshold_predictor, tile_size=64,
                                                 overlap=16), 128, 128)
    write_label_image(tmp_path / "x_masks.tif", labels)
    assert np.array_equal(read_label_image(tmp_path / "x_masks.tif"), labels)


def test_overlay_draws_outlines_on_composite():
    image = np.zeros((7, 40, 50), np.float32)
    image[0, 10:20, 10:20] = 100.0  # bright DAPI square -> blue
    labels = np.zeros((40, 50), np.int32)
    labels[10:20, 10:20] = 1
    rgb = render_overlay(image, labels)
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[10, 10]) == (255, 255, 0)  # outline
    assert rgb[15, 15, 2] == 255 and rgb[15, 15, 0] == 0  # inside: blue channel composite
    assert tuple(rgb[30, 40]) == (0, 0, 0)


def test_collect_inputs_folder_json_and_errors(tmp_path):
    for name in ("b", "a", "c"):
        write_ome_tiff(tmp_path / f"{name}.ome.tif", np.zeros((2, 8, 8), np.uint16))
    write_label_image(tmp_path / "a_masks.tif", np.zeros((8, 8), np.int32))
    items = collect_inputs([tmp_path])
    assert [(i.stem, i.image_id) for i in items] == [("a", 1), ("b", 2), ("c", 3)]
    gt = {"images": [{"id": 9, "file_name": "c.ome.tif", "height": 8, "width": 8}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    items = collect_inputs([tmp_path / "gt.json"])
    assert [(i.path.name, i.image_id) for i in items] == [("c.ome.tif", 9)]
    with pytest.raises(DamaUserError, match="no such file or folder"):
        collect_inputs([tmp_path / "missing.tif"])
    with pytest.raises(DamaUserError, match="same output name"):
        collect_inputs([tmp_path / "a.ome.tif", tmp_path])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DamaUserError, match="no .tif"):
        collect_inputs([tmp_path / "empty"])


def test_predict_one_scales_like_the_mapper():
    """uint16 raw image + dtype_max / percentile scaling == predicting the scaled image."""
    from dama_det.data.normalize import scale_intensities
    from dama_det.inference.predict_images import PredictOptions, predict_one

    image, _ = blob_image(192, n_small=20, channels=2, seed=4)
    raw = (image * 65535).astype(np.uint16).astype(np.float32)
    for mode in ("dtype_max", "percentile"):
        opts = PredictOptions(num_channels=2, intensity_scaling=mode, tile_size=64, overlap=16,
                              progress=False)
        labels, dets = predict_one(raw, np.dtype(np.uint16), threshold_predictor, opts)
        scaled = scale_intensities(raw, mode, np.uint16, opts.percentile_range)
        expected, _ = paint_labels(
            predict_image_tiled(scaled, threshold_predictor, tile_size=64, overlap=16), 192, 192)
        assert labels.max() > 10 and np.array_equal(labels, expected)
