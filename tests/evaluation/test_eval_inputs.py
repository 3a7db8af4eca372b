"""Evaluation inputs: RLE checking and clear errors for bad ground truth / results."""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from dama_det.data.rle import check_rle_runs, normalize_segmentation
from dama_det.errors import DamaUserError
from dama_det.evaluation.inputs import load_ground_truth, load_results
from dama_det.evaluation.synthetic import ellipse_rle, make_synthetic_case


@pytest.fixture(scope="module")
def small_case():
    gt, dets = make_synthetic_case(2, (20, 30), size=(64, 80), radius=(3, 8), seed=5)
    return load_ground_truth(gt), dets


def test_check_rle_runs_accepts_valid_and_names_malformed():
    rng = np.random.default_rng(0)
    good = []
    for _ in range(20):
        m = np.asfortranarray(rng.random((37, 53)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
        good.append({"size": [37, 53], "counts": mask_util.encode(m)["counts"].decode("ascii")})
    check_rle_runs(good, [f"e{i}" for i in range(20)])
    valid = good[0]["counts"]
    for bad in (valid[:-3], valid + "00", "a", "\x7f", "0k1", valid[:5] + " " + valid[6:]):
        rles = good[:3] + [{"size": [37, 53], "counts": bad}] + good[3:]
        with pytest.raises(DamaUserError, match=r"^e3: malformed RLE"):
            check_rle_runs(rles, [f"e{i}" for i in range(len(rles))])


def test_ellipse_rle_matches_a_drawn_mask():
    h, w = 40, 50
    rle = ellipse_rle(38.2, 10.3, 5.5, 3.2, h, w)
    yy, xx = np.mgrid[:h, :w]
    ref = ((yy - 38.2) / 5.5) ** 2 + ((xx - 10.3) / 3.2) ** 2 <= 1
    mask = mask_util.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert np.array_equal(mask.astype(bool), ref)


def test_normalize_segmentation_formats():
    m = np.zeros((20, 30), np.uint8, order="F")
    m[4:9, 5:12] = 1
    ref = mask_util.encode(m)
    # Column-major runs: 5 columns of 20 rows + 4 background, then 7 columns of 5 on / 15 off.
    runs = [5 * 20 + 4] + [5, 15] * 6 + [5, 20 * 30 - (5 * 20 + 4) - 7 * 5 - 6 * 15]
    as_list = normalize_segmentation({"size": [20, 30], "counts": runs}, 20, 30, "x")
    as_poly = normalize_segmentation([[5, 4, 12, 4, 12, 9, 5, 9]], 20, 30, "x")
    assert as_list["counts"] == ref["counts"].decode()
    assert mask_util.area({"size": [20, 30], "counts": as_poly["counts"].encode()}) > 0
    with pytest.raises(DamaUserError, match="image size"):
        normalize_segmentation({"size": [21, 30], "counts": ref["counts"]}, 20, 30, "entry 3")


def _first(dets, **changes):
    bad = [dict(d) for d in dets]
    bad[0].update(changes)
    return bad


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: _first(d, image_id=999), r"entry 0: image_id 999 is not in the ground truth"),
        (lambda d: _first(d, category_id=3), r"entry 0: category_id 3 is not a ground-truth"),
        (lambda d: _first(d, segmentation={"size": [64, 80], "counts": "not an rle"}),
         r"entry 0: malformed RLE"),
        (lambda d: _first(d, segmentation={"size": [64, 80], "counts": "0k1"}),
         r"malformed RLE \(run lengths must be >= 0 and add up to 64x80"),
        (lambda d: _first(d, segmentation={"size": [64, 80], "counts": [10, 5]}),
         r"malformed uncompressed RLE"),
        (lambda d: _first(d, score="high"), r"'score' must be a finite number"),
        (lambda d: _first(d, bbox=[1, 2, 3]), r"'bbox' must be 4 finite numbers"),
        (lambda d: [dict(d[0])] + [{k: v for k, v in x.items() if k != "bbox"} for x in d[1:]],
         r"entry 1: every detection must have the same keys"),
        (lambda d: [], r"the results are empty"),
        (lambda d: [{"image_id": 1, "category_id": 1, "score": 1.0}], r"needs 'bbox' and/or"),
    ],
)
def test_bad_results_raise_clear_errors(small_case, mutate, message):
    gt, dets = small_case
    with pytest.raises(DamaUserError, match=message):
        load_results(mutate(dets), gt, "mymethod")


def test_results_file_errors_name_the_file(tmp_path, small_case):
    gt, dets = small_case
    bad = tmp_path / "res.json"
    bad.write_text("[{\"image_id\": 1,,}]")
    with pytest.raises(DamaUserError, match=r"res.json: invalid JSON at line 1"):
        load_results(bad, gt, "m")
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"foo": 1}))
    with pytest.raises(DamaUserError, match=r"obj.json: COCO results must be a list"):
        load_results(obj, gt, "m")
    with pytest.raises(DamaUserError, match=r"no such results file"):
        load_results(tmp_path / "missing.json", gt, "m")
    empty = tmp_path / "folder"
    empty.mkdir()
    with pytest.raises(DamaUserError, match=r"no label image for ground-truth image 'img_001.tif'"):
        load_results(empty, gt, "m")


def test_bad_ground_truth(small_case):
    gt, _ = small_case
    wrong_cat = json.loads(json.dumps(gt))
    wrong_cat["annotations"][2]["category_id"] = 9
    with pytest.raises(DamaUserError, match=r"annotations\[2\]: category_id 9"):
        load_ground_truth(wrong_cat)
    no_cats = {**gt, "categories": []}
    with pytest.raises(DamaUserError, match="categories"):
        load_ground_truth(no_cats)
    bad_rle = json.loads(json.dumps(gt))
    bad_rle["annotations"][0]["segmentation"]["counts"] = "00"
    with pytest.raises(DamaUserError, match=r"annotations\[0\]: malformed RLE"):
        load_ground_truth(bad_rle)
    orphan = json.loads(json.dumps(gt))
    orphan["annotations"][0]["image_id"] = 77
    with pytest.raises(DamaUserError, match="names no image"):
        load_ground_truth(orphan)
