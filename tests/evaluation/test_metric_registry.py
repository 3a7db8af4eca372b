"""The cell-metric and evaluator registries: a metric registered from this module alone
appears in metrics.json, summary.md, the demo report, the detectron2 evaluator's results
and the cell figure; ``TEST.EVALUATOR`` names are checked against the evaluator registry."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dama_det.data.coco_labels import label_image_to_annotations
from dama_det.errors import DamaUserError
from dama_det.evaluation import evaluate
from dama_det.evaluation.metric_registry import (
    CellMetric,
    MatchCounts,
    cell_metrics,
    compute_cell_metrics,
    figure_metrics,
    ratio,
    register_cell_metric,
    table_metrics,
    unregister_cell_metric,
)
from dama_det.pipeline.report import cell_table

SIZE = 96


def _disks(centres, radius=8):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    labels = np.zeros((SIZE, SIZE), np.int32)
    for k, (cy, cx) in enumerate(centres):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius * radius] = k + 1
    return labels


@pytest.fixture()
def toy_metric():
    """False positives per ground-truth instance, registered for one test."""
    metric = register_cell_metric(CellMetric(
        "fp_per_gt", "FP per GT", lambda c: ratio(c.fp, c.n_gt), help="toy"))
    yield metric
    unregister_cell_metric("fp_per_gt")


@pytest.fixture()
def case():
    """4 ground-truth disks; predictions: 3 exact, 2 in empty space (TP 3, FP 2, FN 1)."""
    gt_labels = _disks([(20, 20), (20, 70), (70, 20), (70, 70)])
    pred_labels = _disks([(20, 20), (20, 70), (70, 20), (45, 45), (88, 45)], radius=8)
    gt = {"images": [{"id": 1, "file_name": "a.tif", "height": SIZE, "width": SIZE}],
          "annotations": label_image_to_annotations(gt_labels, 1),
          "categories": [{"id": 1, "name": "cell"}]}
    return gt, label_image_to_annotations(pred_labels, 1, scores={k: 0.9 for k in range(1, 6)})


def test_toy_metric_reaches_metrics_json_summary_and_reports(tmp_path, case, toy_metric):
    gt, dets = case
    metrics = evaluate(gt, {"model": dets}, tmp_path / "ev", cell_iou_thresholds=[0.5, 0.9],
                       progress=False)
    on_disk = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for t in ("0.5", "0.9"):
        c = on_disk["model"]["cell"][t]
        assert (c["tp"], c["fp"], c["fn"]) == (3, 2, 1)
        assert c["fp_per_gt"] == pytest.approx(2 / 4)
    assert metrics == on_disk
    summary = (tmp_path / "ev" / "summary.md").read_text()
    header = next(line for line in summary.splitlines() if line.startswith("| IoU | TP"))
    assert header.endswith("| PQ | FP per GT |")
    assert "| 0.5 | 3 | 2 | 1 | 0.6000 | 0.7500 |" in summary
    rows = [line for line in summary.splitlines() if line.startswith(("| 0.5 | 3", "| 0.9 | 3"))]
    assert len(rows) == 2 and all(r.endswith("| 0.5000 |") for r in rows)  # the toy column
    assert (tmp_path / "ev" / "figures" / "compare_cell.png").is_file()
    demo_rows = cell_table(on_disk)
    assert demo_rows[0].endswith("| FP per GT |")
    assert demo_rows[2] == "| model | 0.5 | 3 | 2 | 1 | 0.600 | 0.750 | 0.667 | 0.500 | " \
        f"{on_disk['model']['cell']['0.5']['panoptic_quality']:.3f} | 0.500 |"


def test_toy_metric_in_detectron2_results(toy_metric):
    pytest.importorskip("detectron2")
    from dama_det.evaluation.detectron2_evaluator import flatten_for_detectron2

    cell = {"0.5": compute_cell_metrics(MatchCounts(tp=3, fp=2, fn=1, iou_sum=2.7))}
    flat = flatten_for_detectron2({"segm": {"AP": 0.5}, "cell": cell})
    assert flat["cell"]["fp_per_gt@0.5"] == pytest.approx(50.0)
    assert flat["cell"]["accuracy@0.5"] == pytest.approx(50.0)
    assert "mean_matched_iou@0.5" not in flat["cell"]  # not a table metric
    assert flat["segm"]["AP"] == pytest.approx(50.0)


def test_builtin_metrics_from_counts():
    c = compute_cell_metrics(MatchCounts(tp=3, fp=2, fn=1, iou_sum=2.7))
    assert (c["tp"], c["fp"], c["fn"], c["n_pred"], c["n_gt"]) == (3, 2, 1, 5, 4)
    assert c["precision"] == pytest.approx(0.6) and c["recall"] == pytest.approx(0.75)
    assert c["f1"] == pytest.approx(6 / 9) and c["accuracy"] == pytest.approx(0.5)
    assert c["mean_matched_iou"] == pytest.approx(0.9)
    assert c["panoptic_quality"] == pytest.approx(2.7 / 4.5)
    empty = compute_cell_metrics(MatchCounts(0, 0, 0, 0.0))
    assert all(empty[m.name] == 0.0 for m in cell_metrics())
    assert [m.name for m in table_metrics()] == [
        "precision", "recall", "f1", "accuracy", "panoptic_quality"]
    assert [m.name for m in figure_metrics()] == ["precision", "recall", "f1", "accuracy"]


def test_registry_rejects_taken_and_bad_names(toy_metric):
    with pytest.raises(ValueError, match="already exists"):
        register_cell_metric(CellMetric("fp_per_gt", "again", lambda c: 0.0))
    with pytest.raises(ValueError, match="already exists"):
        register_cell_metric(CellMetric("tp", "a count", lambda c: 0.0))
    with pytest.raises(ValueError, match="identifier"):
        register_cell_metric(CellMetric("fp per gt", "spaces", lambda c: 0.0))
    unregister_cell_metric("fp_per_gt")
    assert "fp_per_gt" not in [m.name for m in cell_metrics()]


def test_evaluator_registry_checks_names_and_builds_a_registered_one():
    pytest.importorskip("detectron2")
    from dama_det.config import get_dama_cfg
    from dama_det.engine.evaluators import (
        build_evaluator,
        check_evaluator_name,
        evaluator_names,
        register_evaluator,
        unregister_evaluator,
    )

    assert evaluator_names()[:2] == ["cell", "coco"]
    with pytest.raises(DamaUserError, match="TEST.EVALUATOR must be one of 'cell', 'coco'"):
        check_evaluator_name("cocoo")

    @register_evaluator("toy", "returns its arguments")
    def build_toy(cfg, dataset_name, output_folder, max_dets):
        return ("toy", dataset_name, output_folder, max_dets)

    try:
        cfg = get_dama_cfg()
        cfg.TEST.EVALUATOR = "toy"
        assert build_evaluator(cfg, "cells_val", "/tmp/x", 500) == ("toy", "cells_val", "/tmp/x",
                                                                   500)
        with pytest.raises(ValueError, match="already registered"):
            register_evaluator("toy")(build_toy)
    finally:
        unregister_evaluator("toy")
    assert "toy" not in evaluator_names()


def test_toy_metric_in_compare_results(tmp_path, toy_metric):
    from dama_det.pipeline.compare_results import write_results
    from dama_det.pipeline.run_spec import load_run_spec

    desc = tmp_path / "run.yaml"
    desc.write_text("seeds: [0, 1]\ndataset: {type: synth}\ndetection: {config: x}\n"
                    "methods: [random, classical]\n")
    spec = load_run_spec(desc)

    def entry(tp, fp, fn):
        c = compute_cell_metrics(MatchCounts(tp=tp, fp=fp, fn=fn, iou_sum=0.8 * tp))
        return {"bbox": {"AP": 0.3}, "segm": {"AP": 0.3}, "cell": {"0.5": c}}

    metrics = {0: {"random": entry(6, 2, 2), "classical": entry(5, 1, 3)},
               1: {"random": entry(6, 4, 2), "classical": entry(5, 1, 3)}}
    text = write_results(tmp_path, spec, {1.0: metrics}).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| method | IoU |"))
    assert header == "| method | IoU | precision | recall | F1 | TP/(TP+FP+FN) | PQ | FP per GT |"
    # random: FP per GT 2/8 and 4/8 -> 37.5 ± 12.5; recall 6/8 both seeds
    assert "| random | 0.5 | 67.5 ± 7.5 | 75.0 ± 0.0 |" in text
    assert text.rstrip().endswith("| classical | 0.5 | 83.3 ± 0.0 | 62.5 ± 0.0 | 71.4 ± 0.0 | "
                                  "55.6 ± 0.0 | 57.1 ± 0.0 | 12.5 ± 0.0 |")
    row = next(line for line in text.splitlines() if line.startswith("| random | 0.5"))
    assert row.endswith("| 37.5 ± 12.5 |")
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["cell"]["random"]["0.5"]["fp_per_gt"]["mean"] == pytest.approx(0.375)
