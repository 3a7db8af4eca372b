"""Cell matching metrics: exact TP/FP/FN on constructed disks; optimal (Hungarian)
matching."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from dama_det.data.coco_labels import label_image_to_annotations
from dama_det.data.tiff_io import write_label_image
from dama_det.evaluation import evaluate
from dama_det.evaluation.cell_metrics import cell_matching_metrics, match_instances
from dama_det.evaluation.inputs import load_ground_truth, load_results

RADIUS, SPACING, GRID = 10, 40, (4, 5)
# Shift (pixels) of each predicted disk from its ground-truth disk; IoU of two r=10
# disks shifted by d: 0 -> 1.0, 1 -> .876, 2 -> .776, 3 -> .686, 4 -> .605,
# 5 -> .531, 6 -> .464, 7 -> .403, 9 -> .294.
SHIFTS = [0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 6, 7, 9]  # 13 predicted of 20 cells
EXPECTED_TP = {0.3: 12, 0.5: 10, 0.6: 9, 0.7: 6, 0.8: 4, 0.9: 2}


def disk(shape, cy, cx, r=RADIUS):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def disk_case():
    """(gt label image, prediction label image, scores per prediction label)."""
    shape = (SPACING * (GRID[0] + 2), SPACING * (GRID[1] + 1))
    gt = np.zeros(shape, np.int32)
    pred = np.zeros(shape, np.int32)
    centres = [(SPACING * (i + 1), SPACING * (j + 1))
               for i in range(GRID[0]) for j in range(GRID[1])]
    for k, (cy, cx) in enumerate(centres):
        gt[disk(shape, cy, cx)] = k + 1
    scores = {}
    for k, d in enumerate(SHIFTS):
        cy, cx = centres[k]
        pred[disk(shape, cy, cx + d)] = k + 1
        scores[k + 1] = 1.0
    # False positives in the empty bottom row: two confident, two below the threshold.
    for n, (x, s) in enumerate([(40, 0.9), (100, 0.8), (160, 0.2), (190, 0.1)]):
        label = 100 + n
        pred[disk(shape, shape[0] - 20, x, 8)] = label
        scores[label] = s
    return gt, pred, scores


def independent_iou(gt: np.ndarray, pred: np.ndarray, g: int, p: int) -> float:
    a, b = gt == g, pred == p
    return (a & b).sum() / (a | b).sum()


@pytest.fixture(scope="module")
def coco_case():
    gt_labels, pred_labels, scores = disk_case()
    h, w = gt_labels.shape
    gt = load_ground_truth({
        "images": [{"id": 7, "file_name": "disks.tif", "height": h, "width": w}],
        "annotations": label_image_to_annotations(gt_labels, 7),
        "categories": [{"id": 1, "name": "cell"}]})
    dets = load_results(label_image_to_annotations(pred_labels, 7, scores=scores), gt, "disks")
    return gt_labels, pred_labels, gt, dets


def test_constructed_ious_are_as_designed(coco_case):
    gt_labels, pred_labels, _, _ = coco_case
    ious = [independent_iou(gt_labels, pred_labels, k + 1, k + 1) for k in range(len(SHIFTS))]
    for t, n in EXPECTED_TP.items():
        assert sum(i >= t for i in ious) == n
        assert all(abs(i - t) > 0.004 for i in ious)  # nothing sits on a threshold


def test_exact_counts_on_disks(coco_case):
    _, _, gt, dets = coco_case
    m = cell_matching_metrics(gt, dets, sorted(EXPECTED_TP), score_threshold=0.5)
    n_pred, n_gt = len(SHIFTS) + 2, 20  # two false positives pass the score threshold
    for t, tp in EXPECTED_TP.items():
        e = m[f"{t:g}"]
        assert (e["tp"], e["fp"], e["fn"]) == (tp, n_pred - tp, n_gt - tp), t
        assert e["precision"] == pytest.approx(tp / n_pred)
        assert e["recall"] == pytest.approx(tp / n_gt)
        assert e["f1"] == pytest.approx(2 * tp / (n_pred + n_gt))
        assert e["accuracy"] == pytest.approx(tp / (n_pred + n_gt - tp))
    assert m["0.9"]["mean_matched_iou"] == 1.0
    everything = cell_matching_metrics(gt, dets, [0.5], score_threshold=0.0)["0.5"]
    assert everything["fp"] == len(SHIFTS) + 4 - EXPECTED_TP[0.5]


def test_box_matching_differs_from_mask_matching(coco_case):
    _, _, gt, dets = coco_case
    boxes = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
    m = cell_matching_metrics(gt, boxes, [0.5], use_masks=None)["0.5"]
    # Box IoU of disks shifted by d (21 px boxes): (21-d)/(21+d) >= 0.5 for d <= 7.
    assert m["tp"] == 12


def test_hungarian_beats_greedy():
    iou = np.array([[0.6, 0.35], [0.4, 0.0]])
    p, g = match_instances(iou, 0.3)  # greedy would take (0, 0) and leave pred 1 alone
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 1), (1, 0)]
    p, g = match_instances(np.array([[0.9, 0.6], [0.6, 0.55]]), 0.5)
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 0), (1, 1)]  # larger IoU sum
    p, g = match_instances(np.zeros((3, 0)), 0.5)
    assert p.size == 0 and g.size == 0


def test_matching_is_maximum_cardinality_on_random_graphs():
    rng = np.random.default_rng(3)
    for _ in range(30):
        iou = rng.random((25, 30)) * (rng.random((25, 30)) < 0.08)
        p, g = match_instances(iou, 0.3)
        assert len(set(p.tolist())) == p.size and len(set(g.tolist())) == g.size
        assert np.all(iou[p, g] >= 0.3)
        best = maximum_bipartite_matching(csr_matrix(iou >= 0.3), perm_type="column")
        assert p.size == int((best >= 0).sum())


def test_label_image_folders_as_results(tmp_path, coco_case):
    gt_labels, pred_labels, _, _ = coco_case
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "cellpose"
    gt_dir.mkdir()
    pred_dir.mkdir()
    h, w = gt_labels.shape
    gt = {"images": [{"id": 1, "file_name": "sub/tile_a.ome.tif", "height": h, "width": w}],
          "annotations": label_image_to_annotations(gt_labels, 1),
          "categories": [{"id": 1, "name": "cell"}]}
    write_label_image(pred_dir / "tile_a_cp_masks.tif", pred_labels)
    write_label_image(gt_dir / "tile_a_masks.tif", gt_labels)
    metrics = evaluate(gt, {"cellpose": pred_dir, "same": gt_dir}, figures=False,
                       progress=False, cell_iou_thresholds=[0.5, 0.9])
    cp = metrics["cellpose"]["cell"]["0.5"]
    # Label images carry no scores: every instance (score 1) counts, all four FPs too.
    assert (cp["tp"], cp["fp"], cp["fn"]) == (EXPECTED_TP[0.5], len(SHIFTS) + 4 - 10, 10)
    assert metrics["same"]["segm"]["AP"] == 1.0 and metrics["same"]["cell"]["0.9"]["f1"] == 1.0


def test_real_nuclei_eroded_predictions(dsb2018_dir, tmp_path):
    """DSB2018 label images as ground truth; eroded copies as cellpose-style predictions.
    The matching counts equal an independent per-nucleus IoU computed with numpy."""
    from scipy import ndimage

    from dama_det.data.tiff_io import read_label_image

    mask_files = sorted((dsb2018_dir / "val").glob("*_masks.tif"))[:3]
    pred_dir = tmp_path / "eroded"
    pred_dir.mkdir()
    images, annotations, expected = [], [], {0.5: 0, 0.8: 0}
    for image_id, path in enumerate(mask_files, start=1):
        labels = read_label_image(path)
        eroded = np.where(ndimage.grey_erosion(labels, size=(3, 3)) == labels, labels, 0)
        write_label_image(pred_dir / path.name, eroded)
        for lab in np.unique(labels)[1:]:
            a, b = labels == lab, eroded == lab
            iou = (a & b).sum() / (a | b).sum()
            for t in expected:
                expected[t] += int(iou >= t)
        stem = path.name[: -len("_masks.tif")]
        h, w = labels.shape
        images.append({"id": image_id, "file_name": f"{stem}.tif", "height": h, "width": w})
        annotations += label_image_to_annotations(labels, image_id, start_id=len(annotations) + 1)
    gt = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}
    metrics = evaluate(gt, {"eroded": pred_dir, "truth": [
        {**{k: a[k] for k in ("image_id", "category_id", "bbox", "segmentation")}, "score": 1.0}
        for a in annotations]}, figures=False, progress=False, cell_iou_thresholds=[0.5, 0.8])
    n_gt = len(annotations)
    assert n_gt > 30
    assert metrics["truth"]["segm"]["AP"] == 1.0
    for t, tp in expected.items():
        assert metrics["eroded"]["cell"][f"{t:g}"]["tp"] == tp
        assert metrics["eroded"]["cell"][f"{t:g}"]["fn"] == n_gt - tp
    assert 0 < expected[0.8] < expected[0.5]
    assert metrics["eroded"]["segm"]["AP"] < metrics["eroded"]["segm"]["AP50"] <= 1.0
