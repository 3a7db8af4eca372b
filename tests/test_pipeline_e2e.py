"""End to end at the smallest size: `dama-det demo --preset smoke` and a resumed
`dama-det compare` (random init vs MAE) on the demo's data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dama_det.cli import main
from dama_det.pipeline import compare as compare_mod
from dama_det.pipeline.compare import run_comparison

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--preset", "smoke", "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_demo_writes_report_with_real_numbers_and_figures(smoke_demo):
    report = (smoke_demo / "report.md").read_text()
    metrics = json.loads((smoke_demo / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"dama"}
    for iou_type in ("bbox", "segm"):
        ap = metrics["dama"][iou_type]["AP"]
        assert 0.0 <= ap <= 1.0
        assert f"{100 * ap:.1f}" in report  # the table shows the evaluated numbers
    # every linked figure exists and is a real PNG
    links = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert any("eval/figures" in link for link in links)
    assert any("predictions/" in link and link.endswith("_overlay.png") for link in links)
    for link in links:
        data = (smoke_demo / link).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, link
    # the encoder was exported and the detector trained from it
    log = (smoke_demo / "detector" / "log.txt").read_text()
    assert "encoder.pth" in log


def test_demo_rerun_skips_finished_stages(smoke_demo, capsys):
    before = (smoke_demo / "detector" / "model_final.pth").stat().st_mtime_ns
    assert main(["demo", "--preset", "smoke", "--out", str(smoke_demo), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("[skip]") == 7  # every stage, the report included
    assert (smoke_demo / "detector" / "model_final.pth").stat().st_mtime_ns == before


def test_compare_resumes_after_being_killed(smoke_demo, tmp_path, monkeypatch, capsys):
    data = smoke_demo / "data"
    desc = tmp_path / "run.yaml"
    desc.write_text(f"""
name: smoke
seeds: [0]
dataset: {{type: coco, train_json: {data}/tiles/train.json, val_json: {data}/tiles/val.json,
          pretrain_crops: {data}/crops}}
pretrain: {{model: test, epochs: 1, batch_size: 16}}
detection: {{config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml, iters: 4}}
methods: [random, mae]
""")
    out = tmp_path / "cmp"
    real_cli, calls = compare_mod.run_cli, []

    def dying_cli(argv, log=print):
        calls.append(argv[0])
        if argv[0] == "train" and calls.count("train") == 2:  # killed while training "mae"
            raise KeyboardInterrupt
        real_cli(argv, log)

    monkeypatch.setattr(compare_mod, "run_cli", dying_cli)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(desc, out, device="cpu")
    assert (out / "runs" / "random" / "seed0" / "predictions" / "predictions.json").is_file()
    assert (out / "runs" / "mae" / "seed0" / "encoder.pth").is_file()
    assert not (out / "results.md").exists()

    calls.clear()
    capsys.readouterr()
    results = run_comparison(desc, out, device="cpu")
    # the second run did only what was left: mae's training, prediction, the evaluation
    assert calls == ["train", "predict", "eval"]
    table = results.read_text()
    assert "| random |" in table and "| mae |" in table
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["table"]) == {"random", "mae"}
    for row in summary["table"].values():
        assert 0.0 <= row["segm/AP"]["mean"] <= 1.0 and row["segm/AP"]["n"] == 1
    figures = list((out / "eval" / "seed0" / "figures").glob("compare_*.png"))
    assert figures, "methods overlaid in comparison figures"
