"""Run descriptions of `dama-det compare`: parsing, validation, clear errors; stage skipping."""
from __future__ import annotations

from pathlib import Path

import pytest

from dama_det.cli import main
from dama_det.errors import DamaUserError
from dama_det.pipeline.run_spec import load_run_spec
from dama_det.pipeline.stages import run_stage

REPO = Path(__file__).resolve().parents[2]
EMPTY_ZIP = b"PK\x05\x06" + bytes(18)  # an intact (empty) zip directory


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


def _benchmark_descriptions() -> dict[Path, dict]:
    """The run descriptions behind BENCHMARKS.md's tables (yaml files with ``methods``)."""
    import yaml

    raw = {p: yaml.safe_load(p.read_text()) or {}
           for p in sorted((REPO / "benchmarks").rglob("*.yaml"))}
    return {p: d for p, d in raw.items() if "methods" in d}


def test_benchmark_descriptions_still_reproduce():
    """Every description a BENCHMARKS.md table cites has a detector config that merges
    with compare's schedule and the description's overrides (a renamed or removed config
    key would make the table unreproducible), and parses whole where its data exists (the
    floor study's split is made by a script, DSB2018 lives in ../shared)."""
    from argparse import Namespace

    from dama_det.engine import build_cfg
    from dama_det.pipeline.steps import detector_opts

    descriptions = _benchmark_descriptions()
    assert len(descriptions) >= 30
    parsed = 0
    for path, raw in descriptions.items():
        detection = raw["detection"]
        iters = detection.get("iters")
        cfg = build_cfg(Namespace(config_file=detection["config"],
                                  opts=detector_opts(iters, detection.get("opts", []))),
                        resolve=False)
        assert len(cfg.MODEL.ANCHOR_GENERATOR.SIZES) == len(cfg.MODEL.RPN.IN_FEATURES), path
        if iters:
            assert cfg.SOLVER.MAX_ITER == int(iters) and not cfg.SOLVER.STEPS_FROM_FRACTIONS
        folders = [v for k, v in raw["dataset"].items() if k in ("train", "val")]
        assert not any(Path(f).is_absolute() for f in folders), f"{path}: use relative paths"
        if all((path.parent / f).is_dir() for f in folders):
            spec = load_run_spec(path)
            assert spec.detection["config"] == detection["config"], path
            parsed += 1
    if (REPO.parent / "shared" / "data" / "dsb2018").is_dir():
        assert parsed >= 20  # every DSB2018-val and synthetic description


def test_methods_kinds_and_relative_paths(tmp_path):
    (tmp_path / "enc.pth").write_bytes(b"x")
    spec = load_run_spec(_write(tmp_path, """
name: t
seeds: [3, 4]
dataset: {type: synth, tile_size: 128}
detection: {config: quick_schedules/mask_rcnn_dama_vit_instant_test.yaml, iters: 5}
methods: [random, init, dama, {name: d-rand, method: dama-rand}, {name: mine, weights: enc.pth},
          classical, redraw]
"""))
    kinds = {m.name: (m.kind, m.method) for m in spec.methods}
    assert kinds == {"random": ("random", None), "init": ("init", None),
                     "redraw": ("redraw", None),
                     "dama": ("pretrain", "dama"), "classical": ("classical", None),
                     "d-rand": ("pretrain", "dama-rand"), "mine": ("weights", None)}
    assert spec.methods[4].weights == (tmp_path / "enc.pth").resolve()
    assert spec.seeds == [3, 4]


def test_method_pretrain_overrides_and_probe_defaults(tmp_path):
    (tmp_path / "imgs").mkdir()
    spec = load_run_spec(_write(tmp_path, """
dataset: {type: folders, train: imgs, val: imgs}
pretrain: {model: mini, epochs: 10, blr: 1.0e-3}
detection: {config: x}
methods: [init, dama, {name: dama-long, method: dama, pretrain: {epochs: 40, batch_size: 8}}]
probe: {max_images: 12}
"""))
    init, dama, long = spec.methods
    assert spec.pretrain_of(dama) == {"model": "mini", "epochs": 10, "blr": 1.0e-3}
    assert spec.pretrain_of(long) == {"model": "mini", "epochs": 40, "blr": 1.0e-3, "batch_size": 8}
    assert (long.kind, long.method) == ("pretrain", "dama")
    # folders -> a dense probe on the training pairs; synth -> celltype on its crops
    assert spec.probe == {"task": "dense", "data": (tmp_path / "imgs").resolve(), "max_images": 12}
    synth = load_run_spec(_write(tmp_path, "dataset: {type: synth}\ndetection: {config: x}\n"
                                           "methods: [dama]\nprobe: true\n"))
    assert synth.probe == {"task": "celltype"}
    assert load_run_spec(_write(tmp_path, "dataset: {type: synth}\ndetection: {config: x}\n"
                                          "methods: [dama]\n")).probe is None


def test_method_pretrain_override_reaches_the_pretrain_command(tmp_path, monkeypatch):
    from dama_det.pipeline import compare as compare_mod
    from dama_det.pipeline import steps

    spec = load_run_spec(_write(tmp_path, """
dataset: {type: synth}
pretrain: {model: test, epochs: 10}
detection: {config: x}
methods: [dama, {name: dama-long, method: dama, pretrain: {epochs: 40}}]
"""))
    commands = []

    def fake_run(options, entry, log=print):  # write what each stage promises, record it
        argv = [*options.COMMAND, *options.argv()]  # the command that repeats the stage
        commands.append(argv)
        out = Path(argv[argv.index("--output-dir") + 1]) if "--output-dir" in argv else None
        target = out / "encoder.pth" if out else Path(argv[argv.index("--out") + 1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(EMPTY_ZIP)  # what a complete checkpoint looks like to run_stage

    monkeypatch.setattr(steps, "run_command", fake_run)  # every stage runs through it
    cmp = compare_mod.Comparison(spec, tmp_path / "out", log=lambda s: None)
    for m in spec.methods:
        cmp.pretrained_encoder(m, 0, tmp_path / "crops", 7)
    epochs = [argv[argv.index("--epochs") + 1] for argv in commands if argv[0] == "pretrain"]
    assert epochs == ["10", "40"]


def test_redraw_trains_random_init_with_the_vit_drawn_under_seed_plus_1000(tmp_path,
                                                                           monkeypatch):
    from dama_det.pipeline import compare as compare_mod
    from dama_det.pipeline import steps

    spec = load_run_spec(_write(tmp_path, """
dataset: {type: synth}
detection: {config: x, iters: 7, opts: [MODEL.ROI_HEADS.NAME, CascadeROIHeads]}
methods: [random, redraw, {name: aa, method: redraw}]
"""))
    trained = {}

    def fake_train(config, out, **kw):  # record the call, write what the stage promises
        trained[(out.parts[-3], out.parts[-2])] = kw
        out.mkdir(parents=True)
        (out / "model_final.pth").write_bytes(EMPTY_ZIP)

    def fake_predict(images, weights, out, **kw):
        out.mkdir(parents=True)
        (out / "predictions.json").write_text("[]")

    monkeypatch.setattr(steps, "train_detector", fake_train)
    monkeypatch.setattr(steps, "predict", fake_predict)
    cmp = compare_mod.Comparison(spec, tmp_path / "out", log=lambda s: None)
    for seed in (0, 3):
        for m in spec.methods:
            assert cmp.pretrained_encoder(m, seed, tmp_path / "crops", 1) is None  # nothing to load
            cmp.run_method(m, seed, 1.0, tmp_path / "train.json", tmp_path / "val.json", None)
    shared = ["MODEL.ROI_HEADS.NAME", "CascadeROIHeads"]
    for seed in (0, 3):
        random, redraw, aa = (trained[(name, f"seed{seed}")] for name in ("random", "redraw", "aa"))
        assert random["opts"] == shared and random["weights"] is None
        assert redraw["opts"] == aa["opts"] == [*shared, "MODEL.DAMA_VIT.INIT_SEED", seed + 1000]
        # everything else (seed, schedule, data) is random init's
        assert {k: v for k, v in redraw.items() if k != "opts"} == \
            {k: v for k, v in random.items() if k != "opts"}
    with pytest.raises(DamaUserError, match=r"methods\[0\]\.pretrain'.*not pretrained"):
        load_run_spec(_write(tmp_path, "dataset: {type: synth}\ndetection: {config: x}\nmethods:"
                                       " [{name: r, method: redraw, pretrain: {epochs: 2}}]\n"))


def test_detection_tta_reaches_predict_and_names_the_predictions_folder(tmp_path, monkeypatch):
    from dama_det.pipeline import compare as compare_mod
    from dama_det.pipeline import steps

    predicted = []

    def fake_train(config, out, **kw):
        out.mkdir(parents=True)
        (out / "model_final.pth").write_bytes(EMPTY_ZIP)

    def fake_predict(images, weights, out, **kw):
        predicted.append((out.name, kw["tta"]))
        out.mkdir(parents=True)
        (out / "predictions.json").write_text("[]")

    monkeypatch.setattr(steps, "train_detector", fake_train)
    monkeypatch.setattr(steps, "predict", fake_predict)
    for tta, folder in (("flip", "predictions_tta-flip"), ("off", "predictions")):
        spec = load_run_spec(_write(tmp_path, "dataset: {type: synth}\nmethods: [random]\n"
                                              f"detection: {{config: x, tta: {tta}}}\n"))
        cmp = compare_mod.Comparison(spec, tmp_path / f"out_{tta}", log=lambda s: None)
        preds = cmp.run_method(spec.methods[0], 0, 1.0, tmp_path / "t.json", tmp_path / "v.json",
                               None)
        assert preds.parent.name == folder and preds.is_file()
        assert cmp.evaluation_name(2, 0.1) == "seed2_f0.1" + folder[len("predictions"):]
    assert predicted == [("predictions_tta-flip", "flip"), ("predictions", "off")]
    with pytest.raises(DamaUserError, match=r"'detection.tta'.*off, flip, flip-nms.*'rot'"):
        load_run_spec(_write(tmp_path, "dataset: {type: synth}\nmethods: [random]\n"
                                       "detection: {config: x, tta: rot}\n"))
    with pytest.raises(DamaUserError, match=r"got True \(YAML reads an unquoted on"):
        load_run_spec(_write(tmp_path, "dataset: {type: synth}\nmethods: [random]\n"
                                       "detection: {config: x, tta: on}\n"))


def test_probe_summary_means_and_paired_gains(tmp_path):
    from dama_det.pipeline.compare_results import probe_summary, write_results

    spec = load_run_spec(_write(tmp_path, """
seeds: [0, 1]
dataset: {type: synth}
detection: {config: x}
methods: [random, init, dama]
probe: {task: celltype}
"""))
    def res(lin, knn):
        return {"linear": {"balanced_accuracy": lin}, "knn": {"balanced_accuracy": knn}}
    probes = {0: {"init": res(0.50, 0.40), "dama": res(0.70, 0.45)},
              1: {"init": res(0.60, 0.40), "dama": res(0.70, 0.55)}}
    summary = probe_summary(spec, probes)
    assert set(summary) == {"init", "dama"}  # random init has no encoder export to probe
    assert summary["dama"]["linear"]["mean"] == pytest.approx(0.70)
    assert summary["dama"]["linear vs init"]["mean"] == pytest.approx(0.15)
    assert summary["dama"]["linear vs init"]["std"] == pytest.approx(0.05)
    assert summary["dama"]["knn vs init"]["mean"] == pytest.approx(0.10)
    assert summary["init"]["linear vs init"]["mean"] == 0.0
    ap = {"bbox": {"AP": 0.3}, "segm": {"AP": 0.2}}
    metrics = {1.0: {s: {m: ap for m in ("random", "init", "dama")} for s in (0, 1)}}
    text = write_results(tmp_path, spec, metrics, probes=probes).read_text()
    assert "## Frozen-encoder probe (celltype)" in text
    assert "| dama | 70.0 ± 0.0 | +15.0 ± 5.0 | 50.0 ± 5.0 | +10.0 ± 5.0 |" in text


def test_iteration_schedule_for_any_length():
    from dama_det import get_dama_cfg
    from dama_det.pipeline.stages import iteration_schedule_opts

    for iters, steps in ((1, ()), (3, (2,)), (1000, (800, 950))):
        cfg = get_dama_cfg()
        cfg.merge_from_list(iteration_schedule_opts(iters))  # a valid detectron2 schedule
        assert cfg.SOLVER.MAX_ITER == iters and tuple(cfg.SOLVER.STEPS) == steps
        assert cfg.SOLVER.STEPS_FROM_FRACTIONS is False  # the explicit steps stand
        assert 1 <= cfg.SOLVER.WARMUP_ITERS <= max(1, iters // 4)
    with pytest.raises(DamaUserError, match="at least 1 iteration"):
        iteration_schedule_opts(0)


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
    single = load_run_spec(_write(tmp_path, "dataset: {type: synth, label_fraction: 0.5}\n"
                                  "detection: {config: x}\nmethods: [dama]\n"))
    assert single.label_fractions == [0.5]

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
    ("dataset: {type: folders, train: missing_dir, val: v}\ndetection: {config: x}\n"
     "methods: [dama]\n", "dataset.train"),
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
    # typos inside sections are errors too, named with their section
    ("dataset: {type: synth}\npretrain: {model: test, epoch: 1}\ndetection: {config: x}\n"
     "methods: [dama]\n", "pretrain.epoch"),
    ("dataset: {type: synth, n_train_tile: 3}\ndetection: {config: x}\nmethods: [dama]\n",
     "dataset.n_train_tile"),
    ("dataset: {type: folders, train: ., val: ., max_crop: 9}\ndetection: {config: x}\n"
     "methods: [dama]\n", "dataset.max_crop"),
    ("dataset: {type: synth}\ndetection: {config: x, iter: 3}\nmethods: [dama]\n",
     "detection.iter"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama]\n"
     "evaluation: {max_det: 5}\n", "evaluation.max_det"),
    ("dataset: {type: synth}\ndetection: {config: x, iters: 0}\nmethods: [dama]\n",
     "detection.iters"),
    ("dataset: {type: synth}\npretrain: {blr: -1}\ndetection: {config: x}\nmethods: [dama]\n",
     "pretrain.blr"),
    ("dataset: {type: synth}\ndetection: {config: x, opts: SOLVER.BASE_LR}\nmethods: [dama]\n",
     "detection.opts"),
    # YAML 1.1 reads an unquoted off / no as False: not a command-line word
    ("dataset: {type: synth}\npretrain: {args: [--amp, off]}\ndetection: {config: x}\n"
     "methods: [dama]\n", "pretrain.args[1]': YAML read this value as the boolean False"),
    ("dataset: {type: synth}\ndetection: {config: x}\n"
     "methods: [{name: d, method: dama, pretrain: {epoch: 4}}]\n", "methods[0].pretrain.epoch"),
    ("dataset: {type: synth}\ndetection: {config: x}\n"
     "methods: [{name: r, method: random, pretrain: {epochs: 4}}]\n", "not pretrained"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama]\nprobe: {task: seg}\n",
     "probe.task"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama]\nprobe: {task: dense}\n",
     "probe.data"),
    ("dataset: {type: synth}\ndetection: {config: x}\nmethods: [dama]\n"
     "probe: {max_image: 3}\n", "probe.max_image"),
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


def test_failed_stage_prints_one_error_line_and_how_to_continue(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    desc = _write(tmp_path, "dataset: {type: folders, train: empty, val: empty}\n"
                            "detection: {config: quick_schedules/mask_rcnn_dama_vit_instant_test}\n"
                            "methods: [random]\n")
    rc = main(["compare", str(desc), "--out", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "empty" in errors[0]  # the stage's own message
    assert (err[-1].startswith("stopped: 'dama-det data' failed")
            and "run the same command" in err[-1])


def test_missing_detector_config_is_refused_before_any_stage(tmp_path, capsys):
    """The detector config is read when the settings are recorded, so a wrong name stops
    the comparison before its data stage, naming the config; nothing is recorded."""
    desc = _write(tmp_path, "dataset: {type: synth}\ndetection: {config: no_such_config}\n"
                            "methods: [random]\n")
    out = tmp_path / "out"
    rc = main(["compare", str(desc), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: no_such_config: no such config file (shipped configs:")
    assert not (out / "settings.json").exists() and not (out / "data").exists()


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
    # an interrupted non-atomic write (0 bytes, a truncated checkpoint) is not "done"
    ckpt = tmp_path / "model_final.pth"
    ckpt.write_bytes(b"")
    assert not run_stage("c", [ckpt], lambda: ckpt.write_bytes(EMPTY_ZIP),
                         log=lambda s: None).skipped
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RuntimeError, match="without writing"):
        run_stage("c", [ckpt], lambda: None, log=lambda s: None)
