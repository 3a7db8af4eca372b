"""The report files, figures, ``dama-det eval`` / ``dama-det plot`` and the detectron2
evaluator."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dama_det.cli import main
from dama_det.evaluation import evaluate, load_curves
from dama_det.evaluation.synthetic import make_synthetic_case


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcase")
    gt, dets = make_synthetic_case(2, (110, 130), size=(160, 160), radius=(3, 20), seed=11)
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "model.json").write_text(json.dumps(dets))
    boxes = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
    (root / "boxes.json").write_text(json.dumps(boxes))
    return root, gt, dets


def _png_ok(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].std() > 0.05  # something is drawn
    return img


def test_evaluate_writes_every_output(case, tmp_path):
    root, gt, dets = case
    out = tmp_path / "report"
    metrics = evaluate(root / "gt.json", {"model": root / "model.json",
                                          "boxes only": root / "boxes.json"},
                       out, max_dets=(1, 10, 100, 500), progress=False)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert set(on_disk["model"]) == {"bbox", "segm", "cell"}
    assert set(on_disk["boxes only"]) == {"bbox", "cell"}
    for name in on_disk:
        for task in ("bbox", "segm"):
            stats = on_disk[name].get(task, {})
            for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "AR500"):
                if task in on_disk[name]:
                    v = stats[key]
                    assert v is None or 0.0 <= v <= 1.0, (name, task, key, v)
        assert set(on_disk[name]["cell"]) == {"0.5", "0.6", "0.7", "0.8", "0.9"}
    assert 0.2 < on_disk["model"]["segm"]["AP"] < 0.95

    details = json.loads((out / "report.json").read_text())
    bd = details["methods"]["model"]["segm"]["error_breakdown"]["all"]
    assert list(bd) == ["C75", "C50", "Loc", "Sim", "Oth", "BG", "FN"]
    assert bd["C75"] <= bd["C50"] <= bd["Loc"] <= bd["BG"] <= bd["FN"] == 1.0
    ap = details["methods"]["model"]["segm"]["ap_per_iou"]["all"]
    assert ap["0.5"] == pytest.approx(on_disk["model"]["segm"]["AP50"], abs=1e-12)
    assert len(details["methods"]["model"]["segm"]["pr_curves"]["all"]["0.1"]) == 101

    curves, pr_ious = load_curves(out / "pr_curves.npz")
    assert [c.name for c in curves] == ["model", "boxes only"]
    assert 0.75 in pr_ious and set(curves[1].precision) == {"bbox"}
    np.testing.assert_allclose(curves[0].curve("segm", 0.5),
                               details["methods"]["model"]["segm"]["pr_curves"]["all"]["0.5"],
                               atol=1e-6)
    summary = (out / "summary.md").read_text()
    assert "| model |" in summary and "## boxes only" in summary and "| AR500 |" in summary

    figs = out / "figures"
    for stem in ("model_segm_pr", "model_segm_breakdown", "boxes_only_bbox_pr",
                 "compare_bbox_pr", "compare_bbox_breakdown", "compare_cell"):
        assert (figs / f"{stem}.pdf").stat().st_size > 5000
        _png_ok(figs / f"{stem}.png")
    assert not (figs / "boxes_only_segm_pr.png").exists()
    assert not (figs / "compare_segm_pr.png").exists()  # one method with masks only


def test_cli_eval_and_plot(case, tmp_path, capsys):
    root, _, _ = case
    out = tmp_path / "cli"
    rc = main(["eval", "--gt", str(root / "gt.json"), "--results", f"A={root / 'model.json'}",
               "--out", str(out), "--max-dets", "300", "--no-figures", "--area-ranges", "cells",
               "--cell-iou-thresholds", "0.5,0.75"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "AR300" in metrics["A"]["segm"] and "AR1000" not in metrics["A"]["segm"]
    assert set(metrics["A"]["cell"]) == {"0.5", "0.75"}
    assert "A: bbox AP" in capsys.readouterr().out
    assert not (out / "figures").exists()

    plots = tmp_path / "plots"
    rc = main(["plot", "--metrics", f"run1={out / 'metrics.json'}",
               f"run2={out / 'pr_curves.npz'}", "--out", str(plots), "--format", "png",
               "--iou-thresholds", "0.5,0.75"])
    assert rc == 0
    _png_ok(plots / "compare_segm_pr.png")
    _png_ok(plots / "run1_A_segm_breakdown.png")
    assert not list(plots.glob("*.pdf"))


def test_eval_warns_when_max_dets_caps_ap(case, tmp_path, capsys):
    """The ground truth scored against itself: AP 1 only when maxDets covers every
    instance; below that one warning line names the image and its counts."""
    root, gt, _ = case
    perfect = [{**a, "score": 1.0} for a in gt["annotations"]]
    (tmp_path / "perfect.json").write_text(json.dumps(perfect))
    per_image = {}
    for a in gt["annotations"]:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    most = max(per_image.values())
    aps = {}
    for k in (100, most):
        out = tmp_path / f"k{k}"
        rc = main(["eval", "--gt", str(root / "gt.json"), "--results",
                   f"self={tmp_path / 'perfect.json'}", "--out", str(out), "--max-dets", str(k),
                   "--no-figures"])
        assert rc == 0
        captured = capsys.readouterr()
        warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
        aps[k] = json.loads((out / "metrics.json").read_text())["self"]["segm"]["AP"]
        if k < most:
            image = max(per_image, key=per_image.get)
            assert len(warnings) == 1, captured.err
            assert f"image {image} " in warnings[0] and f"has {most} ground-truth" in warnings[0]
            assert f"--max-dets {most}" in warnings[0]
        else:
            assert not warnings, warnings
        # --no-figures: the summary line does not promise figures
        assert f"wrote {out / 'metrics.json'}" in captured.out and "figures" not in captured.out
    assert aps[most] == pytest.approx(1.0) and aps[100] < 0.95


def test_plot_truncated_curves_file_is_one_line(case, tmp_path, capsys):
    root, _, _ = case
    out = tmp_path / "ev"
    assert main(["eval", "--gt", str(root / "gt.json"), "--results", f"A={root / 'model.json'}",
                 "--out", str(out), "--no-figures"]) == 0
    npz = out / "pr_curves.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    capsys.readouterr()
    assert main(["plot", "--metrics", str(npz), "--out", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(npz) in err[0], err
    assert "truncated" in err[0]
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--results", "A"], "expected NAME=PATH"),
        (["--results", "A={missing}"], "does not exist"),
        (["--results", "A={model}", "A={model}"], "given twice"),
        (["--results", "A={bad_image}"], "image_id 12345 is not in the ground truth"),
        (["--results", "A={empty}"], "the results are empty"),
        (["--results", "A={model}", "--max-dets", "0"], "--max-dets must be >= 1"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(case, tmp_path, capsys, argv, message):
    root, _, dets = case
    (tmp_path / "bad.json").write_text(json.dumps([{**dets[0], "image_id": 12345}]))
    (tmp_path / "empty.json").write_text("[]")
    paths = {"missing": tmp_path / "nope.json", "model": root / "model.json",
             "bad_image": tmp_path / "bad.json", "empty": tmp_path / "empty.json"}
    argv = [a.format(**paths) for a in argv]
    rc = main(["eval", "--gt", str(root / "gt.json"), "--out", str(tmp_path / "o"), *argv])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_detectron2_evaluator_matches_report(case, tmp_path):
    import pycocotools.mask as mask_util
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import DatasetEvaluator
    from detectron2.structures import Boxes, Instances

    from dama_det.evaluation import CellCOCOEvaluator

    root, gt, dets = case
    name = "dama_eval_test_synthetic"
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(json_file=str(root / "gt.json"), thing_classes=["cell"],
                                  thing_dataset_id_to_contiguous_id={1: 0})
    evaluator = CellCOCOEvaluator(name, str(tmp_path / "d2"), max_dets=(1, 10, 100, 500),
                                  figures=False, distributed=False)
    assert isinstance(evaluator, DatasetEvaluator)
    evaluator.reset()
    for img in gt["images"]:
        mine = [d for d in dets if d["image_id"] == img["id"]]
        inst = Instances((img["height"], img["width"]))
        xywh = torch.tensor([d["bbox"] for d in mine], dtype=torch.float32)
        inst.pred_boxes = Boxes(torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1))
        inst.scores = torch.tensor([d["score"] for d in mine])
        inst.pred_classes = torch.zeros(len(mine), dtype=torch.int64)
        masks = [mask_util.decode({"size": d["segmentation"]["size"],
                                   "counts": d["segmentation"]["counts"].encode()}) for d in mine]
        inst.pred_masks = torch.from_numpy(np.stack(masks).astype(bool))
        evaluator.process([{"image_id": img["id"]}], [{"instances": inst}])
    results = evaluator.evaluate()
    reference = evaluate(gt, {"model": dets}, max_dets=(1, 10, 100, 500), progress=False)["model"]
    assert results["segm"]["AP"] == pytest.approx(100 * reference["segm"]["AP"], abs=1e-6)
    assert results["bbox"]["AP50"] == pytest.approx(100 * reference["bbox"]["AP50"], abs=1e-3)
    assert results["cell"]["f1@0.5"] == pytest.approx(100 * reference["cell"]["0.5"]["f1"])
    assert np.isnan(results["segm"]["APl"])
    assert (tmp_path / "d2" / "metrics.json").is_file()
    assert (tmp_path / "d2" / "coco_instances_results.json").is_file()


def test_legends_carry_area_under_curve(case):
    import re

    from dama_det.evaluation.plots import figure_method_breakdown, figure_method_pr

    _, gt, dets = case
    from dama_det.evaluation.report import evaluate_report

    report = evaluate_report(gt, {"m": dets}, progress=False)
    curves = report.methods["m"].curves()
    fig = figure_method_pr(curves, "segm", [0.1, 0.5, 0.75])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [re.sub(r"^\[\d\.\d{3}\] ", "", s) for s in labels] == ["@0.1", "@0.5", "@0.75"]
    ap50 = report.metrics()["m"]["segm"]["AP50"]
    assert labels[1] == f"[{ap50:.3f}] @0.5"
    fig = figure_method_breakdown(curves, "segm")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [s.split("] ")[1] for s in labels] == ["C75", "C50", "Loc", "Sim", "Oth", "BG", "FN"]
    assert labels[0] == f"[{report.metrics()['m']['segm']['AP75']:.3f}] C75"
