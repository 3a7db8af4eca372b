"""``dama-det classify`` end to end: 3-fold table, resume, settings guard, bad inputs."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from dama_det.classification.augment import build_eval_transform
from dama_det.classification.dataset import CropDataset, scan_class_folders
from dama_det.classification.finetuning import evaluate
from dama_det.classification.folds import stratified_subset
from dama_det.classification.model import ViTArch, build_classifier
from dama_det.cli import main
from dama_det.utils.device import cpu_has_native_bf16
from dama_det.utils.distributed import DistInfo
from tests.helpers.classification import make_class_crops, write_export

# Small enough for a CPU test, large enough that the tiny ViT reliably learns the
# synthetic cell types (train accuracy ~70-90 % on every fold; chance is 20 %).
TINY = ["--folds", "3", "--epochs", "30", "--warmup-epochs", "1", "--batch-size", "8",
        "--lr", "2e-3", "--mixup", "0", "--cutmix", "0", "--reprob", "0",
        "--crop-scale", "0.6", "1", "--drop-path", "0", "--workers", "0", "--quiet"]
SYNTH = ["--synth-per-class", "12", "--synth-crop-size", "64"]



@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_export(tmp_path_factory.mktemp("export") / "dama.pth", img_size=128, epoch=500)


def _assert_auto_amp(out):
    """--amp auto: every fold of random init in bf16 autocast on a CPU with native bf16
    (this project's machines), else in fp32."""
    stored = json.loads((out / "fold_results.json").read_text())["methods"]["random"]["folds"]
    assert {f["amp"] for f in stored.values()} == {"bfloat16" if cpu_has_native_bf16() else "off"}


def _run(capsys, *argv):
    rc = main(["classify", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_three_fold_run_on_synthetic_crops_table_resume_and_guard(tmp_path, export, capsys):
    """No --data: synthetic crops are generated into OUT and classified over 3 folds."""
    out = tmp_path / "out"
    args = ["--out", out, "--method", "random", "--method", f"dama={export}", *SYNTH, *TINY]
    rc, stdout, err = _run(capsys, *args, "--save-models")
    assert rc == 0, err
    crops = out / "synthetic_crops"
    assert sorted(p.name for p in crops.iterdir() if p.is_dir()) == [
        "astrocyte", "endothelial", "microglia", "neuron", "oligodendrocyte"]

    # the table: rows = methods, columns = 3 folds + Avg. + Err.
    rows = list(csv.reader((out / "table.csv").open()))
    assert rows[0] == ["method", "0", "1", "2", "Avg.", "Err."]
    assert [r[0].split(" (")[0] for r in rows[1:]] == ["Random init.", "dama 500"]
    assert all(len(r) == 6 for r in rows)
    assert rows[1][4].endswith("(+0.00)")
    for r in rows[1:]:
        avg = float(r[4].split("(")[0])
        assert avg == pytest.approx(np.mean([float(x) for x in r[1:4]]), abs=0.006)
        assert float(r[5]) == pytest.approx(100 - avg, abs=1e-6)
    delta = float(rows[2][4].split("(")[1].rstrip(")"))
    assert delta == pytest.approx(float(rows[2][4].split("(")[0]) - float(rows[1][4].split("(")[0]),
                                  abs=0.011)
    md = (out / "table.md").read_text().strip().splitlines()
    assert len(md) == 4 and "Avg. ↑" in md[0]
    assert md[0] in stdout

    _assert_auto_amp(out)

    results = json.loads((out / "results.json").read_text())
    assert results["k"] == 3 and results["class_counts"] == [12] * 5
    assert results["channel_names"][0] == "DAPI" and results["in_chans"] == 7
    for m in results["methods"]:
        assert len(m["fold_acc"]) == 3
        # clearly above chance (20 %) on the training folds, and on the held-out folds
        assert np.mean(m["fold_train_acc"]) > 60.0, m["fold_train_acc"]
        assert min(m["fold_train_acc"]) > 40.0, m["fold_train_acc"]
        assert np.mean(m["fold_acc"]) > 40.0, m["fold_acc"]
        assert np.asarray(m["confusion"]).sum() == 60
        assert (out / f"confusion_{m['name']}.png").stat().st_size > 1000
    report = results["methods"][1]["load_report"]
    assert all(k.startswith(("head.", "fc_norm.")) for k in report["missing_keys"])
    assert report["pos_embed_resampled"] == [[8, 8], [4, 4]]

    # folds: stratified, disjoint, covering every sample
    folds = json.loads((out / "folds.json").read_text())
    labels = np.array([results["class_names"].index(s["label"]) for s in folds["samples"]])
    flat = np.concatenate(folds["folds"])
    assert sorted(flat.tolist()) == list(range(60))
    per_class = np.array([np.bincount(labels[f], minlength=5) for f in folds["folds"]])
    assert (per_class.max(0) - per_class.min(0) <= 1).all()

    # a saved fold model reproduces its stored test confusion matrix
    saved_model = torch.load(out / "models" / "dama" / "fold2.pth", weights_only=False)
    assert saved_model["pool"] == "centre"  # the default
    model = build_classifier(ViTArch(**saved_model["arch"]), img_size=saved_model["img_size"],
                             in_chans=7, num_classes=5, pool=saved_model["pool"])
    model.load_state_dict(saved_model["model"])
    index = scan_class_folders(crops)
    # input standardised with the training folds' statistics (--pixel-stats data), saved
    record = results["methods"][1]["folds"][2]
    train_idx = sorted(np.concatenate([folds["folds"][0], folds["folds"][1]]).tolist())
    raw = np.stack([CropDataset(index, [j])[0][0].numpy() for j in train_idx])
    assert record["pixel_mean"] == pytest.approx(raw.mean(axis=(0, 2, 3)), rel=1e-4)
    assert record["pixel_std"] == pytest.approx(raw.std(axis=(0, 2, 3)), rel=1e-3)
    assert saved_model["pixel_mean"] == record["pixel_mean"]
    test = CropDataset(index, folds["folds"][2], build_eval_transform(64),
                       mean=saved_model["pixel_mean"], std=saved_model["pixel_std"])
    conf = evaluate(model, test, 5, device=torch.device("cpu"), amp_dtype=None,
                    dist_info=DistInfo())
    assert conf.tolist() == results["methods"][1]["folds"][2]["confusion"]

    # resume: everything is done -> nothing retrained, same table
    store = (out / "fold_results.json").read_text()
    table = (out / "table.csv").read_text()
    rc, stdout, _ = _run(capsys, *[a for a in args if a != "--quiet"])
    assert rc == 0 and stdout.count("done earlier, skipped") == 6
    assert (out / "fold_results.json").read_text() == store
    assert (out / "table.csv").read_text() == table

    # folds stored before --pool existed (no "pool" in their settings) were made with
    # average pooling: today's default (centre) refuses them by name, --pool mean continues
    old = json.loads(store)
    for entry in old["methods"].values():
        del entry["fingerprint"]["pool"]
    (out / "fold_results.json").write_text(json.dumps(old))
    rc, _, err = _run(capsys, *args)
    assert rc == 2 and "pool: mean -> centre" in err
    rc, stdout, _ = _run(capsys, *[a for a in args if a != "--quiet"], "--pool", "mean")
    assert rc == 0 and stdout.count("done earlier, skipped") == 6
    (out / "fold_results.json").write_text(store)

    # one fold lost -> only that one is trained again
    saved = json.loads(store)
    del saved["methods"]["random"]["folds"]["1"]
    (out / "fold_results.json").write_text(json.dumps(saved))
    rc, stdout, _ = _run(capsys, *[a for a in args if a != "--quiet"])
    assert rc == 0 and stdout.count("skipped") == 5 and "random fold 2/3: test" in stdout
    again = json.loads((out / "fold_results.json").read_text())["methods"]["random"]["folds"]["1"]
    assert again["confusion"] == json.loads(store)["methods"]["random"]["folds"]["1"]["confusion"]

    # other settings with the same output folder -> a clear error, nothing overwritten
    rc, _, err = _run(capsys, *[a if a != "30" else "31" for a in args])
    assert rc == 2 and err.startswith("error:") and "epochs: 30 -> 31" in err
    assert len(err.strip().splitlines()) == 1
    # random init's position table is a setting of the random method: its folds are kept
    before = (out / "fold_results.json").read_text()
    rc, _, err = _run(capsys, *args, "--random-pos-embed", "trunc_normal")
    assert rc == 2 and "method 'random'" in err
    assert "random_pos_embed: sincos -> trunc_normal" in err
    assert (out / "fold_results.json").read_text() == before


def test_average_pooled_run_records_its_pool_and_its_saved_model_reproduces_it(tmp_path,
                                                                              capsys):
    """--pool mean (MAE's global average pooling; centre is the default): the setting is
    in results.json and the fold store, a saved fold model rebuilt with its recorded pool
    gives the stored confusion matrix, and the same folder with the default is refused
    naming the change."""
    out = tmp_path / "out"
    quick = ["--folds", "2", "--epochs", "2", *TINY[4:]]
    args = ["--out", out, "--method", "random", "--save-models", *SYNTH, *quick]
    rc, _, err = _run(capsys, *args, "--pool", "mean")
    assert rc == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["pool"] == "mean"
    stored = json.loads((out / "fold_results.json").read_text())["methods"]["random"]
    assert stored["fingerprint"]["pool"] == "mean"
    saved = torch.load(out / "models" / "random" / "fold1.pth", weights_only=False)
    assert saved["pool"] == "mean"
    model = build_classifier(ViTArch(**saved["arch"]), img_size=saved["img_size"], in_chans=7,
                             num_classes=5, pool=saved["pool"])
    model.load_state_dict(saved["model"])
    folds = json.loads((out / "folds.json").read_text())["folds"]
    test = CropDataset(scan_class_folders(out / "synthetic_crops"), folds[1],
                       build_eval_transform(64), mean=saved["pixel_mean"], std=saved["pixel_std"])
    conf = evaluate(model, test, 5, device=torch.device("cpu"), amp_dtype=None,
                    dist_info=DistInfo())
    assert conf.tolist() == stored["folds"]["1"]["confusion"]

    before = (out / "fold_results.json").read_text()
    rc, _, err = _run(capsys, *args)
    assert rc == 2 and "pool: mean -> centre" in err and len(err.strip().splitlines()) == 1
    assert (out / "fold_results.json").read_text() == before


def test_label_fraction_trains_every_method_on_the_same_stratified_share(tmp_path, export,
                                                                         capsys):
    """--label-fraction 0.5: each fold trains on half of every class of its training
    folds (the same crops for random init and the export: same pixel statistics), tests
    on the whole fold, and the setting guards the stored folds (stored before the option
    existed = 1.0)."""
    out = tmp_path / "out"
    quick = ["--folds", "2", "--epochs", "1", *TINY[4:]]
    args = ["--out", out, "--method", "random", "--method", f"dama={export}", *SYNTH, *quick]
    rc, _, err = _run(capsys, *args, "--label-fraction", "0.5", "--save-models")
    assert rc == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["label_fraction"] == 0.5
    saved = torch.load(out / "models" / "dama" / "fold0.pth", weights_only=False)
    assert saved["label_fraction"] == 0.5 and saved["n_train"] == 15
    folds = json.loads((out / "folds.json").read_text())["folds"]
    index = scan_class_folders(out / "synthetic_crops")
    random_init, dama = results["methods"]
    for fold in (0, 1):
        a, b = random_init["folds"][fold], dama["folds"][fold]
        assert a["n_test"] == b["n_test"] == len(folds[fold]) == 30
        # 6 crops per class in the training fold, 3 kept: 15 of 30
        assert a["n_train"] == b["n_train"] == 15
        assert np.asarray(a["train_confusion"]).sum(axis=1).tolist() == [3] * 5
        assert a["pixel_mean"] == b["pixel_mean"] and a["pixel_std"] == b["pixel_std"]
        # the subset is the one stratified_subset names for the fold's seed (--seed 0)
        subset = stratified_subset(folds[1 - fold], index.labels, 0.5, seed=fold)
        raw = np.stack([CropDataset(index, [j])[0][0].numpy() for j in subset])
        assert a["pixel_mean"] == pytest.approx(raw.mean(axis=(0, 2, 3)), rel=1e-4)

    store = out / "fold_results.json"
    before = store.read_text()
    rc, _, err = _run(capsys, *args)
    assert rc == 2 and "label_fraction: 0.5 -> 1.0" in err and len(err.strip().splitlines()) == 1
    assert store.read_text() == before
    old = json.loads(before)
    for entry in old["methods"].values():
        del entry["fingerprint"]["label_fraction"]
    store.write_text(json.dumps(old))
    rc, _, err = _run(capsys, *args, "--label-fraction", "0.5")
    assert rc == 2 and "label_fraction: 1.0 -> 0.5" in err


@pytest.mark.parametrize("case, message", [
    ("missing_folder", "no such data folder"),
    ("label_fraction_zero", "--label-fraction must be in (0, 1], got 0.0"),
    ("one_class", "only one class"),
    ("no_images", "holds no TIFF images"),
    ("mixed_channels", "channel(s) but"),
    ("export_channels", "pretrained on 7 channel(s) but the data has 3"),
    ("method_without_export", "give NAME=EXPORT.pth"),
    ("not_an_export", "not a dama_det encoder export"),
    ("folds_mismatch", "holds 3 folds but --folds 4"),
    ("random_width", "width 66 is not divisible by 4, which the 2-D sin-cos position table"),
])
def test_bad_inputs_exit_2_with_one_error_line(tmp_path, export, capsys, case, message):
    data = tmp_path / "data"
    extra: list = []
    if case == "one_class":
        make_class_crops(data, n_per_class=3, size=32, classes=("neuron",))
    elif case == "no_images":
        (data / "neuron").mkdir(parents=True)
        (data / "glia").mkdir()
        (data / "glia" / "notes.txt").write_text("no images here")
    elif case in ("mixed_channels",):
        make_class_crops(data, n_per_class=3, size=32, chans=7, classes=("a", "b"))
        make_class_crops(data, n_per_class=1, size=32, chans=4, classes=("c",))
    elif case == "export_channels":
        make_class_crops(data, n_per_class=3, size=32, chans=3, classes=("a", "b"))
        extra = ["--method", f"dama={export}"]
    elif case == "method_without_export":
        make_class_crops(data, n_per_class=3, size=32, classes=("a", "b"))
        extra = ["--method", "dama"]
    elif case == "not_an_export":
        make_class_crops(data, n_per_class=3, size=32, classes=("a", "b"))
        bad = tmp_path / "bad.pth"
        torch.save({"model": {}}, bad)
        extra = ["--method", f"mae={bad}"]
    elif case == "folds_mismatch":
        make_class_crops(data, n_per_class=4, size=32, classes=("a", "b"))
        from dama_det.classification.dataset import scan_class_folders
        from dama_det.classification.folds import load_or_create_folds
        index = scan_class_folders(data)
        load_or_create_folds(tmp_path / "out" / "folds.json", index.sample_ids, index.labels,
                             index.class_names, k=3)
        extra = ["--folds", "4"]
    elif case == "label_fraction_zero":
        make_class_crops(data, n_per_class=3, size=32, classes=("a", "b"))
        extra = ["--label-fraction", "0"]
    elif case == "random_width":  # the sin-cos start of random init needs a width 4k
        make_class_crops(data, n_per_class=3, size=32, classes=("a", "b"))
        extra = ["--embed-dim", "66"]
    rc, stdout, err = _run(capsys, "--data", data, "--out", tmp_path / "out", "--epochs", "1",
                           "--embed-dim", "64", "--depth", "2", "--num-heads", "2",
                           "--workers", "0", *extra)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "out" / "fold_results.json").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_cpu(tmp_path, capsys):
    """DDP on CPU (gloo): every test sample is counted exactly once across the shards."""
    import os
    import subprocess
    import sys

    data = make_class_crops(tmp_path / "data", n_per_class=4, size=32, classes=("a", "b", "c"))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), "-m", "dama_det", "classify", "--data", str(data),
           "--out", str(out), "--folds", "2", "--epochs", "1", "--batch-size", "2",
           "--embed-dim", "64", "--depth", "2", "--num-heads", "2", "--workers", "0", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_auto_amp(out)

    results = json.loads((out / "results.json").read_text())
    folds = results["methods"][0]["folds"]
    assert [f["n_test"] for f in folds] == [6, 6]
    assert [int(np.asarray(f["confusion"]).sum()) for f in folds] == [6, 6]
    assert [int(np.asarray(f["train_confusion"]).sum()) for f in folds] == [6, 6]
    assert proc.stdout.count("Random init.") == 1  # only rank 0 prints the table
