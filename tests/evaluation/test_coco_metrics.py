"""COCO AP/AR identical to pycocotools; PR curves and error breakdown behave as expected."""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dama_det.evaluation.coco_metrics import (
    STANDARD_IOU_THRESHOLDS,
    merged_iou_thresholds,
    run_coco_eval,
    stat_names,
)
from dama_det.evaluation.error_breakdown import BREAKDOWN_LABELS, breakdown_areas, error_breakdown
from dama_det.evaluation.inputs import load_ground_truth, load_results
from dama_det.evaluation.synthetic import make_synthetic_case, perfect_results

PYCOCO_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
                "ARm", "ARl"]


def pycocotools_eval(gt: dict, dets: list, iou_type: str, max_dets=(1, 10, 100)) -> COCOeval:
    """Plain pycocotools, run the documented way."""
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.fixture(scope="module")
def cases():
    """Three seeds, 2 images of 110-150 cells, radii covering COCO small and medium."""
    out = []
    for seed in (0, 1, 2):
        gt, dets = make_synthetic_case(2, (110, 150), size=(192, 192), radius=(3, 22),
                                       seed=seed)
        gt = load_ground_truth(gt)
        out.append((gt, load_results(dets, gt, f"seed{seed}")))
    return out


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("engine", ["faster", "pycocotools"])
def test_stats_equal_pycocotools(cases, iou_type, engine):
    for gt, dets in cases:
        assert max(np.bincount([a["image_id"] for a in gt["annotations"]])) > 100
        ref = pycocotools_eval(gt, dets, iou_type)
        ours = run_coco_eval(gt, dets, iou_type, max_dets=(1, 10, 100), engine=engine)
        assert list(ours.stats) == PYCOCO_NAMES
        assert ref.stats[0] > 0.2  # a non-trivial case
        for name, expected in zip(PYCOCO_NAMES, ref.stats):
            got = ours.stats[name]
            got = -1.0 if got is None else got
            assert abs(got - expected) <= 1e-9, (name, got, expected)
        # The extra thresholds leave the standard ones' precision untouched.
        std = [int(np.flatnonzero(np.isclose(ours.iou_thresholds, t))[0])
               for t in STANDARD_IOU_THRESHOLDS]
        np.testing.assert_allclose(ours.precision[std], ref.eval["precision"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours.recall[std], ref.eval["recall"], rtol=0, atol=1e-9)
    if iou_type == "segm" and engine == "faster":  # results with masks and no boxes
        gt, dets = cases[0]
        masks_only = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
        ref = pycocotools_eval(gt, masks_only, "segm")
        ours = run_coco_eval(gt, masks_only, "segm", max_dets=(1, 10, 100))
        got = np.array([-1.0 if v is None else v for v in ours.stats.values()])
        np.testing.assert_allclose(got, ref.stats, rtol=0, atol=1e-9)


def test_large_max_dets_names_and_values(cases):
    """With maxDets (1, 10, 100, 300), AP uses 300; pycocotools' summarize would read -1."""
    gt, dets = cases[0]
    ours = run_coco_eval(gt, dets, "segm", max_dets=(1, 10, 100, 300))
    assert list(ours.stats) == stat_names([1, 10, 100, 300], ["small", "medium", "large"])
    assert "AR300" in ours.stats and "AR100" in ours.stats
    ref300 = pycocotools_eval(gt, dets, "segm", max_dets=(1, 10, 300))
    assert ref300.stats[0] == -1  # pycocotools hard-codes maxDets=100 for its first AP
    p = ref300.eval["precision"][:, :, :, 0, -1]
    assert abs(ours.stats["AP"] - np.mean(p[p > -1])) <= 1e-9
    assert abs(ours.stats["AP50"] - ref300.stats[1]) <= 1e-9
    assert abs(ours.stats["AR300"] - ref300.stats[8]) <= 1e-9
    ref100 = pycocotools_eval(gt, dets, "segm")
    assert abs(ours.stats["AR100"] - ref100.stats[8]) <= 1e-9
    # More than 100 detections per image: K = 300 finds more true positives.
    assert ours.stats["AR300"] > ours.stats["AR100"]


def test_merged_thresholds_keep_standard_values():
    merged = merged_iou_thresholds([0.1, 0.6, 0.75, 0.9])
    for t in STANDARD_IOU_THRESHOLDS:
        assert t in merged  # exactly the linspace value, not 0.6 from the user
    assert merged.size == 11 and merged[0] == 0.1
    with pytest.raises(ValueError):
        merged_iou_thresholds([1.5])


def test_perfect_predictions_give_one_everywhere(cases):
    gt, _ = cases[0]
    dets = perfect_results(gt)
    for iou_type in ("bbox", "segm"):
        r = run_coco_eval(gt, dets, iou_type)
        assert r.stats["AP"] == 1.0 and r.stats["AP50"] == 1.0 and r.stats["AR1000"] == 1.0
        # Area "all" only: inside an area range, pycocotools lets a detection of an
        # out-of-range cell match an overlapping in-range cell at low IoU (0.1).
        curves = error_breakdown(r, "all")
        assert all(v == 1.0 for v in breakdown_areas(curves).values())
        assert all(np.all(curves[k] == 1.0) for k in BREAKDOWN_LABELS)
        assert breakdown_areas(error_breakdown(r, "small"))["C75"] == 1.0
        for t in (0.1, 0.3, 0.9):
            assert np.all(r.pr_curve(t) == 1.0)


def test_deleting_predictions_lowers_only_recall(cases):
    gt, _ = cases[1]
    rng = np.random.default_rng(0)
    dets = [d for d in perfect_results(gt) if rng.random() > 0.3]
    kept = len(dets) / len(gt["annotations"])
    r = run_coco_eval(gt, dets, "segm")
    rec = r.rec_thresholds
    for t in (0.1, 0.5, 0.75, 0.9):
        curve = r.pr_curve(t)
        assert np.all(curve[rec <= kept - 1e-9] == 1.0)  # precision untouched
        assert np.all(curve[rec > kept + 1e-9] == 0.0)  # recall lost
    assert abs(r.stats["AR1000"] - kept) < 1e-9
    areas = breakdown_areas(error_breakdown(r))
    assert areas["C75"] == areas["C50"] == areas["Loc"] == areas["BG"] < 0.75
    assert areas["FN"] == 1.0


def _shifted_boxes(gt: dict, fraction: float) -> list[dict]:
    """Boxes moved right by ``fraction`` of their width (IoU (1-f)/(1+f))."""
    return [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
             "bbox": [a["bbox"][0] + fraction * a["bbox"][2], *a["bbox"][1:]]}
            for a in gt["annotations"]]


def grid_ground_truth(n_side: int = 12, radius: float = 6.0, spacing: float = 24.0) -> dict:
    """Well separated disks on a grid (no box overlaps another's neighbour)."""
    from dama_det.evaluation.synthetic import ellipse_rle

    size = int(spacing * (n_side + 1))
    anns = []
    for i in range(n_side):
        for j in range(n_side):
            cy, cx = spacing * (i + 1), spacing * (j + 1)
            anns.append({"id": len(anns) + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "segmentation": ellipse_rle(cy, cx, radius, radius, size, size),
                         "bbox": [cx - radius, cy - radius, 2 * radius + 1, 2 * radius + 1]})
    return load_ground_truth({
        "images": [{"id": 1, "file_name": "grid.tif", "height": size, "width": size}],
        "annotations": anns, "categories": [{"id": 1, "name": "cell"}]})


def test_shifting_boxes_moves_mass_from_c75_to_loc():
    gt = grid_ground_truth()
    exact = breakdown_areas(error_breakdown(run_coco_eval(gt, _shifted_boxes(gt, 0.0), "bbox")))
    assert exact["C75"] == 1.0
    # IoU 0.6: no longer a match at 0.75, still one at 0.5.
    medium = breakdown_areas(error_breakdown(run_coco_eval(gt, _shifted_boxes(gt, 0.25), "bbox")))
    assert medium["C75"] == 0.0 and medium["C50"] == 1.0 and medium["Loc"] == 1.0
    # IoU ~0.3: only the localisation-tolerant curve (IoU 0.1) still counts them.
    far = breakdown_areas(error_breakdown(run_coco_eval(gt, _shifted_boxes(gt, 0.55), "bbox")))
    assert far["C75"] == 0.0 and far["C50"] == 0.0 and far["Loc"] == 1.0
    assert far["Sim"] == far["Oth"] == far["Loc"] and far["BG"] == far["FN"] == 1.0


def test_cell_area_ranges(cases):
    gt, dets = cases[0]
    r = run_coco_eval(gt, dets, "segm", area_ranges="cells")
    assert r.area_names == ["all", "small", "medium", "large"]
    assert r.area_ranges[1] == (0.0, 256.0)
    # Every area-range AP is defined for these 3-22 px ellipses.
    assert all(r.stats[k] is not None for k in ("APs", "APm", "APl"))
    custom = run_coco_eval(gt, dets, "segm", area_ranges={"tiny": (0, 50), "rest": (50, 1e10)})
    assert "AP_tiny" in custom.stats and "AR_rest" in custom.stats
