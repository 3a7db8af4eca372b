"""Run descriptions of `dama-det compare`: parsing, validation, clear errors; stage skipping."""
from __future__ import annotations

from pathlib import Path

import pytest

from dama_det.cli import main
from dama_det.errors import DamaUserError
from dama_det.pipeline.run_spec import load_run_spec
from dama_det.pipeline.stages import run_stage

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_shipped_descriptions_parse():
    shipped = sorted((REPO / "configs" / "compare").glob("*.yaml"))
    assert len(shipped) >= 4
    for path in shipped:
        if "dsb2018" in path.name and not (REPO.parent / "shared" / "data" / "dsb2018").is_dir():
            continue
        spec = load_run_spec(path)
        names = [m.name for m in spec.methods]
        assert {"random", "mae", "dama"} <= set(names), path
        assert spec.seeds and spec.detection["config"]


def test_methods_kinds_and_relative_paths(tmp_path):
    (tmp_path / "enc.pth").write_bytes(b"x")
    spec = load_run_spec(_write(tmp_path, """
name: t
seeds: [3, 4]
dataset: {type: synth, tile_size: 128}
detection: {config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml, iters: 5}
methods: [random, init, dama, {name: d-rand, method: dama-rand}, {name: mine, weights: enc.pth},
          classical]
"""))
    kinds = {m.name: (m.kind, m.method) for m in spec.methods}
    assert kinds == {"random": ("random", None), "init": ("init", None), "dama": ("pretrain", "dama"),
                     "classical": ("classical", None),
                     "d-rand": ("pretrain", "dama-rand"), "mine": ("weights", None)}
    assert spec.methods[4].weights == (tmp_path / "enc.pth").resolve()
    assert spec.seeds == [3, 4]


def test_gains_are_paired_per_seed_differences(tmp_path):
    from dama_det.pipeline.compare_results import gains, write_results

    spec = load_run_spec(_write(tmp_path, """
seeds: [0, 1]
dataset: {type: synth}
detection: {config: x}
methods: [{name: scratch, method: random}, init, dama]
"""))

    def ap(box, mask):
        return {"bbox": {"AP": box}, "segm": {"AP": mask}}

    metrics = {0: {"scratch": ap(0.30, 0.40), "init": ap(0.20, 0.35), "dama": ap(0.34, 0.41)},
               1: {"scratch": ap(0.50, 0.60), "init": ap(0.45, 0.50), "dama": ap(0.52, 0.70)}}
    g = gains(spec, metrics)
    assert g["dama"]["segm/AP vs random"]["mean"] == pytest.approx(0.055)  # (0.01 + 0.10) / 2
    assert g["dama"]["segm/AP vs random"]["std"] == pytest.approx(0.045)
    assert g["dama"]["bbox/AP vs init"]["mean"] == pytest.approx(0.105)  # (0.14 + 0.07) / 2
    assert g["scratch"]["segm/AP vs random"] == {"mean": 0.0, "std": 0.0, "n": 2}
    results = write_results(tmp_path, spec, {1.0: metrics}).read_text()
    assert "| dama | +5.5 ± 4.5 | +3.0 ± 1.0 | +13.0 ± 7.0 | +10.5 ± 3.5 |" in results
    no_controls = load_run_spec(_write(tmp_path, """
dataset: {type: synth}
detection: {config: x}
methods: [dama]
"""))
    assert gains(no_controls, {0: {"dama": ap(0.1, 0.1)}}) == {"dama": {}}


def test_label_fractions_parse_and_tables(tmp_path):
    import json

    from dama_det.pipeline.compare_results import write_results

    spec = load_run_spec(_write(tmp_path, """
seeds: [0, 1]
dataset: {type: synth, label_fraction: [1.0, 0.1, 0.25, 0.1]}
detection: {config: x}
methods: [random, dama]
"""))
    assert spec.label_fractions == [1.0, 0.25, 0.1] and "label_fraction" not in spec.dataset
    assert load_run_spec(_write(tmp_path, "dataset: {type: synth, label_fraction: 0.5}\n"
                                "detection: {config: x}\nmethods: [dama]\n")).label_fractions == [0.5]

    def ap(mask):
        return {"bbox": {"AP": mask / 2}, "segm": {"AP": mask}}

    by_fraction = {f: {s: {"random": ap(f * 0.4 + s * 0.02), "dama": ap(f * 0.4 + 0.05)}
                       for s in (0, 1)} for f in (1.0, 0.25, 0.1)}
    text = write_results(tmp_path, spec, by_fraction).read_text()
    assert "## 10 % of the training images labelled" in text
    assert "| random | 5.0 ± 1.0 | 11.0 ± 1.0 | 41.0 ± 1.0 |" in text  # AP vs labels row
    assert "| dama | 9.0 ± 0.0 | 15.0 ± 0.0 | 45.0 ± 0.0 |" in text
    png = (tmp_path / "ap_vs_labels.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["label_fractions"] == [0.1, 0.25, 1.0]
    assert summary["table"]["dama"]["segm/AP"]["mean"] == pytest.approx(0.45)  # all labels
    assert summary["by_label_fraction"]["0.1"]["gains"]["dama"]["segm/AP vs random"]["mean"] \
        == pytest.approx(0.04)
    csv_rows = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,label_fraction,box AP mean") and len(csv_rows) == 7


@pytest.mark.parametrize("text, needle", [
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [byol]\n", "unknown method 'byol'"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama, dama]\n", "unique"),
    ("dataset: {type: nope}\ndetection: {config: x}\nmethods: [dama]\n", "dataset.type"),
    ("dataset: {type: folders, train: missing_dir, val: v}\ndetection: {config: x}\nmethods: [dama]\n",
     "dataset.train"),
    ("dataset: {type: synth}\nmethods: [dama]\n", "missing key 'detection'"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama]\nseeds: 3\n", "seeds"),
    ("dataset: {type: synth, label_fraction: [0.1, 0]}\ndetection: {config: x}\nmethods: [dama]\n",
     "dataset.label_fraction"),
    ("dataset: {type: synth, label_fraction: 2}\ndetection: {config: x}\nmethods: [dama]\n",
     "dataset.label_fraction"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [{name: m, weights: no.pth}]\n",
     "does not exist"),
    ("dataset: {type: synth\n  detection: [\n", "invalid YAML"),
    ("datasets: {type: synth}\n", "unknown key(s) datasets"),
])
def test_bad_descriptions_name_the_key(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(DamaUserError, match=None) as err:
        load_run_spec(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_compare_cli_bad_description_is_one_error_line(tmp_path, capsys):
    rc = main(["compare", str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and "missing.yaml" in err[0]


def test_run_stage_skips_existing_outputs_and_checks_them(tmp_path):
    out = tmp_path / "a.txt"
    calls = []
    run = lambda: (calls.append(1), out.write_text("x"))  # noqa: E731
    assert not run_stage("s", [out], run, log=lambda s: None).skipped
    assert run_stage("s", [out], run, log=lambda s: None).skipped
    assert not run_stage("s", [out], run, force=True, log=lambda s: None).skipped
    assert len(calls) == 2
    with pytest.raises(RuntimeError, match="without writing"):
        run_stage("t", [tmp_path / "never.txt"], lambda: None, log=lambda s: None)
