"""End to end at the smallest size: `dama-det demo --preset smoke` and a resumed
`dama-det compare` (random init vs the untrained export vs MAE) on the demo's data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dama_det.cli import main
from dama_det.pipeline import steps
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
    assert set(metrics) == {"dama", "classical"}  # the classical floor beside the detector
    for method in ("dama", "classical"):
        for iou_type in ("bbox", "segm"):
            ap = metrics[method][iou_type]["AP"]
            assert 0.0 <= ap <= 1.0
            assert f"{100 * ap:.1f}" in report  # the table shows the evaluated numbers
    assert (smoke_demo / "classical" / "predictions.json").is_file()
    # every linked figure exists and is a real PNG
    links = [line.split("](")[1].rstrip(")") for line in report.splitlines()
             if line.startswith("![")]
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


def test_demo_with_another_preset_or_seed_is_refused(smoke_demo, capsys):
    """A finished demo's folder is not reused for another preset or seed: one error line
    naming what changed, nothing run or overwritten."""
    before = (smoke_demo / "report.md").stat().st_mtime_ns
    for flags, needle in ((["--preset", "cpu"], "demo.det_iters: 6 -> 500"),
                          (["--preset", "smoke", "--seed", "1"], "demo.seed: 0 -> 1")):
        rc = main(["demo", "--out", str(smoke_demo), "--device", "cpu", *flags])
        captured = capsys.readouterr()
        err = [line for line in captured.err.splitlines() if line.strip()]
        assert rc == 2 and len(err) == 1 and err[0].startswith("error:"), err
        assert needle in err[0] and "--force" in err[0]
        assert "[skip]" not in captured.out
    assert (smoke_demo / "report.md").stat().st_mtime_ns == before
    # what the demo took from the code and config files is recorded too
    code = json.loads((smoke_demo / "settings.json").read_text())["made_with"]["demo"]["code"]
    assert code["model_size"]["depth"] == 2 and code["pretrain"]["mask_ratio"] == 0.8
    assert "SOLVER.MAX_ITER" not in code["detector"]  # the preset's det_iters sets it
    assert not {"epochs", "blr", "model", "method"} & set(code["pretrain"])  # the preset's


def test_demo_controls_added_to_a_finished_demo(smoke_demo, capsys):
    before = (smoke_demo / "detector" / "model_final.pth").stat().st_mtime_ns
    assert main(["demo", "--preset", "smoke", "--out", str(smoke_demo), "--device", "cpu",
                 "--controls"]) == 0
    assert "[skip] 4/7 train: Mask R-CNN from the pretrained encoder" in capsys.readouterr().out
    assert (smoke_demo / "detector" / "model_final.pth").stat().st_mtime_ns == before
    metrics = json.loads((smoke_demo / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"dama", "random", "init", "classical"}  # re-evaluated together
    from dama_det.encoder_export.format import load_encoder_export

    assert load_encoder_export(smoke_demo / "controls" / "init" / "encoder.pth")["epoch"] == 0
    log = (smoke_demo / "controls" / "init" / "detector" / "log.txt").read_text()
    assert "controls/init/encoder.pth" in log  # the init control loaded the untrained export
    report = (smoke_demo / "report.md").read_text()
    gain = 100 * (metrics["dama"]["segm"]["AP"] - metrics["init"]["segm"]["AP"])
    assert "## Gain over the controls" in report and "| dama - init | " in report
    assert f"{gain:+.1f} |" in report.split("| dama - init |")[1].splitlines()[0]


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
methods: [random, init, mae]
probe: {{task: celltype, data: {data}/crops, max_images: 24}}
""")
    out = tmp_path / "cmp"
    real_run, calls = steps.run_command, []

    def dying_run(options, entry, log=print):
        calls.append(options.COMMAND[0])
        if options.COMMAND[0] == "train" and calls.count("train") == 3:  # killed training "mae"
            raise KeyboardInterrupt
        real_run(options, entry, log)

    monkeypatch.setattr(steps, "run_command", dying_run)  # every stage runs through it
    with pytest.raises(KeyboardInterrupt):
        run_comparison(desc, out, device="cpu")
    assert (out / "runs" / "random" / "seed0" / "predictions" / "predictions.json").is_file()
    assert (out / "runs" / "mae" / "seed0" / "encoder.pth").is_file()
    assert not (out / "results.md").exists()
    # the init control: the untrained export of the same pretraining model, no training
    from dama_det.encoder_export.format import load_encoder_export

    init = load_encoder_export(out / "runs" / "init" / "seed0" / "pretrain" / "encoder.pth")
    assert init["epoch"] == 0 and init["embed_dim"] == 64
    assert not (out / "runs" / "init" / "seed0" / "pretrain" / "checkpoint-last.pth").exists()
    # every encoder was probed frozen before detection (random init has no export)
    probed = sorted(p.parent.parent.name for p in out.glob("runs/*/seed0/probe_celltype.json"))
    assert probed == ["init", "mae"]

    calls.clear()
    capsys.readouterr()
    results = run_comparison(desc, out, device="cpu")
    # the second run did only what was left: mae's training, prediction, the evaluation
    assert calls == ["train", "predict", "eval"]
    table = results.read_text()
    assert "| random |" in table and "| init |" in table and "| mae |" in table
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["table"]) == {"random", "init", "mae"}
    for row in summary["table"].values():
        assert 0.0 <= row["segm/AP"]["mean"] <= 1.0 and row["segm/AP"]["n"] == 1
    # gains over both controls: paired per-seed differences of the table's numbers
    gains, seed0 = summary["gains"], summary["per_seed"]["0"]
    assert gains["random"]["segm/AP vs random"]["mean"] == 0.0
    assert gains["init"]["bbox/AP vs init"]["mean"] == 0.0
    assert gains["mae"]["segm/AP vs init"]["mean"] == pytest.approx(
        seed0["mae"]["segm"]["AP"] - seed0["init"]["segm"]["AP"])
    assert "Gain over the controls" in table and "mask AP vs init" in table
    probe = summary["probe"]["table"]
    assert set(probe) == {"init", "mae"} and probe["init"]["linear vs init"]["mean"] == 0.0
    assert 0.0 <= probe["mae"]["knn"]["mean"] <= 1.0
    assert "## Frozen-encoder probe (celltype)" in table
    figures = list((out / "eval" / "seed0" / "figures").glob("compare_*.png"))
    assert figures, "methods overlaid in comparison figures"


def test_compare_with_label_fractions(smoke_demo, tmp_path):
    data = smoke_demo / "data"
    n_train = len(json.loads((data / "tiles" / "train.json").read_text())["images"])
    desc = tmp_path / "run.yaml"
    desc.write_text(f"""
name: labels
seeds: [0]
dataset: {{type: coco, train_json: {data}/tiles/train.json, val_json: {data}/tiles/val.json,
          pretrain_crops: {data}/crops, label_fraction: [0.5, 1.0]}}
detection: {{config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml, iters: 2}}
methods: [random, classical]
""")
    out = tmp_path / "cmp"
    results = run_comparison(desc, out, device="cpu").read_text()
    # the classical floor: predicted once, evaluated beside the detectors at every fraction
    assert (out / "runs" / "classical" / "predictions" / "predictions.json").is_file()
    assert not (out / "runs" / "classical" / "seed0").exists()
    for name in ("seed0", "seed0_f0.5"):
        m = json.loads((out / "eval" / name / "metrics.json").read_text())
        assert set(m) == {"random", "classical"} and 0 <= m["classical"]["segm"]["AP"] <= 1
    subset = json.loads((out / "data" / "train_f0.5_seed0.json").read_text())
    assert len(subset["images"]) == max(1, round(n_train / 2))
    cfg = (out / "runs" / "random" / "seed0" / "detector_f0.5" / "config.yaml").read_text()
    assert "train_f0.5_seed0.json" in cfg  # the detector saw only the labelled subset
    assert (out / "eval" / "seed0_f0.5" / "metrics.json").is_file()
    assert (out / "eval" / "seed0" / "metrics.json").is_file()
    assert "50 % labels" in results and (out / "ap_vs_labels.png").is_file()
    # a method added to the description later: only it runs, and every evaluation is redone
    desc.write_text(desc.read_text().replace("[random, classical]", "[random, classical, init]"))
    before = (out / "runs" / "random" / "seed0" / "detector" / "model_final.pth").stat().st_mtime_ns
    results = run_comparison(desc, out, device="cpu").read_text()
    assert (out / "runs" / "random" / "seed0" / "detector" / "model_final.pth").stat().st_mtime_ns \
        == before
    for name in ("seed0", "seed0_f0.5"):
        m = json.loads((out / "eval" / name / "metrics.json").read_text())
        assert set(m) == {"random", "classical", "init"}
    assert "| init |" in results
