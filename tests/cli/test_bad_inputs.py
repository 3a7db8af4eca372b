"""Every subcommand on bad input: a missing, empty or corrupt input, the wrong channel
count, an ``--out`` that is an existing file (an existing folder where a file is
written) or a read-only folder. Each must exit with status 2 and one ``error:`` line
naming the path (or key) at fault, leave no traceback and no new file behind.

``demo`` and ``compare`` are run descriptions over these subcommands (their own tests
cover them)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dama_det.cli import main
from dama_det.data.coco_labels import folder_to_coco
from dama_det.data.tiff_io import write_label_image, write_ome_tiff
from dama_det.engine import QUICK_CONFIG
from dama_det.inference.predictor import MaskRCNNTilePredictor
from tests.helpers.predict_fakes import tiny_cfg
from tests.helpers.pretrain_crops import small_args, write_crops
from tests.helpers.read_only import read_only
from tests.helpers.train_args import FAST, tiny_export

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _image_folder(folder: Path, channels: int, size: int = 64) -> Path:
    rng = np.random.default_rng(channels)
    image = (rng.random((channels, size, size)) * 3000).astype(np.uint16)
    labels = np.zeros((size, size), np.int32)
    labels[20:36, 24:40] = 1
    image[:, labels > 0] = 50000
    write_ome_tiff(folder / "img.ome.tif", image)
    write_label_image(folder / "img_masks.tif", labels)
    return folder


def _truncated_ome(path: Path) -> Path:
    """A multi-page OME-TIFF cut short (tifffile alone reads it as its first page)."""
    write_ome_tiff(path, np.ones((7, 64, 64), np.uint16), compression=None)
    path.write_bytes(path.read_bytes()[:20000])
    return path


def _coco(folder: Path, json_path: Path) -> Path:
    json_path.write_text(json.dumps(folder_to_coco(folder, progress=False,
                                                   relative_to=json_path.parent)))
    return json_path


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Valid inputs of every subcommand, and broken ones."""
    w = tmp_path_factory.mktemp("ws")
    good = _image_folder(w / "good", 7)
    three = _image_folder(w / "three", 3)
    _coco(good, w / "gt.json")
    _coco(three, w / "three.json")
    bad = w / "bad"
    bad.mkdir()
    _truncated_ome(bad / "img.ome.tif")
    write_label_image(bad / "img_masks.tif", np.ones((64, 64), np.int32))
    gt = json.loads((w / "gt.json").read_text())
    gt["images"][0]["file_name"] = "bad/img.ome.tif"
    (w / "corrupt_images.json").write_text(json.dumps(gt))
    (w / "empty_dir").mkdir()
    (w / "empty.tif").write_bytes(b"")
    _truncated_ome(w / "corrupt.ome.tif")
    (w / "empty.json").write_bytes(b"")
    (w / "corrupt.json").write_text('{"images": [')
    (w / "empty.pth").write_bytes(b"")
    (w / "corrupt.pth").write_bytes(b"PK\x03\x04 not a checkpoint")
    (w / "empty.npz").write_bytes(b"")
    (w / "file.txt").write_text("an existing file")
    # a model as `dama-det train` leaves it (random weights)
    (w / "model").mkdir()
    cfg = tiny_cfg()
    model = MaskRCNNTilePredictor.from_config(cfg, None, device="cpu", amp="off").model
    torch.save({"model": model.state_dict(), "iteration": 1}, w / "model" / "model_final.pth")
    (w / "model" / "config.yaml").write_text(cfg.dump())
    # crops (two classes), crops of another channel count, a corrupt crop
    write_crops(w / "crops", 4)
    write_crops(w / "crops3", 4, channels=3)
    write_crops(w / "badcrops", 4)
    _truncated_ome(w / "badcrops" / "type0" / "broken.ome.tif")
    tiny_export(w / "encoder.pth")
    assert main(["pretrain", *small_args(w / "crops", w / "pre", "--epochs", "1")]) == 0
    results = [{**a, "score": 1.0} for a in gt["annotations"]]
    (w / "results.json").write_text(json.dumps(results))
    assert main(["eval", "--gt", str(w / "gt.json"), "--results", f"A={w / 'results.json'}",
                 "--out", str(w / "ev"), "--no-figures"]) == 0
    npz = (w / "ev" / "pr_curves.npz").read_bytes()
    (w / "truncated.npz").write_bytes(npz[: len(npz) // 2])
    return w


# (name, argv; {W} = the workspace, {out} = a new output folder / file, {ro} = a read-only
# folder; the text the error line must hold)
MODEL = ["--weights", "{W}/model/model_final.pth", "--device", "cpu", "--quiet"]
TRAIN = ["--config-file", QUICK_CONFIG, "--device", "cpu"]
PROBE = ["--task", "celltype", "--img-size", "32", "--device", "cpu", "--quiet"]
CASES = [
    # predict
    ("predict missing", ["predict", "{W}/nope.tif", *MODEL, "--out", "{out}"], "{W}/nope.tif"),
    ("predict empty", ["predict", "{W}/empty.tif", *MODEL, "--out", "{out}"], "{W}/empty.tif"),
    ("predict corrupt", ["predict", "{W}/corrupt.ome.tif", *MODEL, "--out", "{out}"],
     "{W}/corrupt.ome.tif"),
    ("predict channels", ["predict", "{W}/three", *MODEL, "--out", "{out}"],
     "{W}/three/img.ome.tif: image has 3 channel(s)"),
    ("predict empty weights", ["predict", "{W}/good", "--weights", "{W}/empty.pth",
                               "--config-file", QUICK_CONFIG, "--out", "{out}", "--quiet"],
     "{W}/empty.pth"),
    ("predict corrupt weights", ["predict", "{W}/good", "--weights", "{W}/corrupt.pth",
                                 "--config-file", QUICK_CONFIG, "--out", "{out}", "--quiet"],
     "{W}/corrupt.pth"),
    ("predict out file", ["predict", "{W}/good", *MODEL, "--out", "{W}/file.txt"],
     "{W}/file.txt"),
    ("predict out ro", ["predict", "{W}/good", *MODEL, "--out", "{ro}"], "{ro}"),
    # classical
    ("classical missing", ["classical", "{W}/nope.tif", "--out", "{out}"], "{W}/nope.tif"),
    ("classical empty", ["classical", "{W}/empty.tif", "--out", "{out}"], "{W}/empty.tif"),
    ("classical corrupt", ["classical", "{W}/corrupt.ome.tif", "--out", "{out}"],
     "{W}/corrupt.ome.tif"),
    ("classical channels", ["classical", "{W}/three", "--channel", "5", "--out", "{out}"],
     "{W}/three/img.ome.tif: --channel 5"),
    ("classical out file", ["classical", "{W}/good", "--out", "{W}/file.txt"], "{W}/file.txt"),
    ("classical out ro", ["classical", "{W}/good", "--out", "{ro}"], "{ro}"),
    # eval
    ("eval missing gt", ["eval", "--gt", "{W}/nope.json", "--results", "A={W}/results.json",
                         "--out", "{out}"], "{W}/nope.json"),
    ("eval empty gt", ["eval", "--gt", "{W}/empty.json", "--results", "A={W}/results.json",
                       "--out", "{out}"], "{W}/empty.json"),
    ("eval corrupt gt", ["eval", "--gt", "{W}/corrupt.json", "--results", "A={W}/results.json",
                         "--out", "{out}"], "{W}/corrupt.json"),
    ("eval empty results", ["eval", "--gt", "{W}/gt.json", "--results", "A={W}/empty.json",
                            "--out", "{out}"], "{W}/empty.json"),
    ("eval out file", ["eval", "--gt", "{W}/gt.json", "--results", "A={W}/results.json",
                       "--out", "{W}/file.txt"], "{W}/file.txt"),
    ("eval out ro", ["eval", "--gt", "{W}/gt.json", "--results", "A={W}/results.json",
                     "--out", "{ro}"], "{ro}"),
    # plot
    ("plot missing", ["plot", "--metrics", "{W}/nope.npz", "--out", "{out}"], "{W}/nope.npz"),
    ("plot empty", ["plot", "--metrics", "{W}/empty.npz", "--out", "{out}"], "{W}/empty.npz"),
    ("plot corrupt", ["plot", "--metrics", "{W}/truncated.npz", "--out", "{out}"],
     "{W}/truncated.npz"),
    ("plot out file", ["plot", "--metrics", "{W}/ev/metrics.json", "--out", "{W}/file.txt"],
     "{W}/file.txt"),
    ("plot out ro", ["plot", "--metrics", "{W}/ev/metrics.json", "--out", "{ro}"], "{ro}"),
    # export
    ("export missing", ["export", "{W}/nope.pth", "--out", "{out}.pth"], "{W}/nope.pth"),
    ("export empty", ["export", "{W}/empty.pth", "--out", "{out}.pth"], "{W}/empty.pth"),
    ("export corrupt", ["export", "{W}/corrupt.pth", "--out", "{out}.pth"], "{W}/corrupt.pth"),
    ("export out folder", ["export", "{W}/pre/checkpoint-last.pth", "--out", "{W}/empty_dir"],
     "{W}/empty_dir"),
    ("export out ro", ["export", "{W}/pre/checkpoint-last.pth", "--out", "{ro}/enc.pth"],
     "{ro}/enc.pth"),
    # pretrain
    ("pretrain missing", ["pretrain", *small_args(Path("{W}/nope"), Path("{out}"))],
     "{W}/nope"),
    ("pretrain empty", ["pretrain", *small_args(Path("{W}/empty_dir"), Path("{out}"))],
     "{W}/empty_dir"),
    ("pretrain corrupt", ["pretrain", *small_args(Path("{W}/badcrops"), Path("{out}"))],
     "{W}/badcrops/type0/broken.ome.tif"),
    ("pretrain channels", ["pretrain", *small_args(Path("{W}/crops3"), Path("{out}"))],
     "{W}/crops3/type0/crop000.ome.tif"),
    ("pretrain out file", ["pretrain", *small_args(Path("{W}/crops"), Path("{W}/file.txt"))],
     "{W}/file.txt"),
    ("pretrain out ro", ["pretrain", *small_args(Path("{W}/crops"), Path("{ro}"))], "{ro}"),
    # train
    ("train missing", ["train", *TRAIN, "--output-dir", "{out}", "--train-json",
                       "{W}/nope.json", "--val-json", "{W}/gt.json", *FAST], "{W}/nope.json"),
    ("train empty", ["train", *TRAIN, "--output-dir", "{out}", "--train-json",
                     "{W}/empty.json", "--val-json", "{W}/gt.json", *FAST], "{W}/empty.json"),
    ("train corrupt json", ["train", *TRAIN, "--output-dir", "{out}", "--train-json",
                            "{W}/corrupt.json", "--val-json", "{W}/gt.json", *FAST],
     "{W}/corrupt.json"),
    ("train corrupt image", ["train", *TRAIN, "--output-dir", "{out}", "--train-json",
                             "{W}/gt.json", "--val-json", "{W}/corrupt_images.json", *FAST],
     "{W}/bad/img.ome.tif"),
    ("train channels", ["train", *TRAIN, "--output-dir", "{out}", "--train-json",
                        "{W}/three.json", "--val-json", "{W}/gt.json", *FAST],
     "{W}/three/img.ome.tif: image has 3 channel(s)"),
    ("train checkpoint", ["train", *TRAIN, "--output-dir", "{out}", "--train-json",
                          "{W}/gt.json", "--val-json", "{W}/gt.json", "--checkpoint",
                          "{W}/encoder.pth", *FAST], "{W}/encoder.pth: checkpoint lacks"),
    ("train config", ["train", "--config-file", "{W}/empty.json", "--output-dir", "{out}",
                      *FAST], "{W}/empty.json: the config file is empty"),
    ("train key", ["train", *TRAIN, "--output-dir", "{out}", "--train-json", "{W}/gt.json",
                   "--val-json", "{W}/gt.json", *FAST, "MODEL.NOT_A_KEY", "1"],
     "MODEL.NOT_A_KEY"),
    ("train out file", ["train", *TRAIN, "--output-dir", "{W}/file.txt", "--train-json",
                        "{W}/gt.json", "--val-json", "{W}/gt.json", *FAST], "{W}/file.txt"),
    ("train out ro", ["train", *TRAIN, "--output-dir", "{ro}", "--train-json", "{W}/gt.json",
                      "--val-json", "{W}/gt.json", *FAST], "{ro}"),
    # classify
    ("classify missing", ["classify", "--data", "{W}/nope", "--out", "{out}", "--quiet"],
     "{W}/nope"),
    ("classify empty", ["classify", "--data", "{W}/empty_dir", "--out", "{out}", "--quiet"],
     "{W}/empty_dir"),
    ("classify corrupt", ["classify", "--data", "{W}/badcrops", "--out", "{out}", "--quiet",
                          "--folds", "2", "--epochs", "1", "--device", "cpu"],
     "{W}/badcrops/type0/broken.ome.tif"),
    ("classify channels", ["classify", "--data", "{W}/crops3", "--method",
                           "enc={W}/encoder.pth", "--out", "{out}", "--quiet", "--folds", "2",
                           "--epochs", "1", "--device", "cpu"],
     "{W}/encoder.pth: encoder was pretrained on 7 channel(s) but the data has 3"),
    ("classify out file", ["classify", "--data", "{W}/crops", "--out", "{W}/file.txt"],
     "{W}/file.txt"),
    ("classify out ro", ["classify", "--data", "{W}/crops", "--out", "{ro}"], "{ro}"),
    # probe
    ("probe missing", ["probe", "--weights", "{W}/nope.pth", "--data", "{W}/crops", *PROBE],
     "{W}/nope.pth"),
    ("probe empty", ["probe", "--weights", "{W}/empty.pth", "--data", "{W}/crops", *PROBE],
     "{W}/empty.pth"),
    ("probe corrupt", ["probe", "--weights", "{W}/corrupt.pth", "--data", "{W}/crops", *PROBE],
     "{W}/corrupt.pth"),
    ("probe channels", ["probe", "--weights", "{W}/encoder.pth", "--data", "{W}/crops3",
                        *PROBE], "{W}/encoder.pth: encoder was pretrained on 7 channel(s)"),
    ("probe out folder", ["probe", "--weights", "{W}/encoder.pth", "--data", "{W}/crops",
                          *PROBE, "--out", "{W}/empty_dir"], "{W}/empty_dir"),
    ("probe out ro", ["probe", "--weights", "{W}/encoder.pth", "--data", "{W}/crops", *PROBE,
                      "--out", "{ro}/m.json"], "{ro}/m.json"),
    # data to-coco / from-coco / synth / crops
    ("to-coco missing", ["data", "to-coco", "{W}/nope", "--out", "{out}.json"], "{W}/nope"),
    ("to-coco empty", ["data", "to-coco", "{W}/empty_dir", "--out", "{out}.json"],
     "{W}/empty_dir"),
    ("to-coco corrupt", ["data", "to-coco", "{W}/bad", "--out", "{out}.json", "--quiet"],
     "{W}/bad/img.ome.tif"),
    ("to-coco channels", ["data", "to-coco", "{W}/three", "--channels", "7", "--out",
                          "{out}.json", "--quiet"], "{W}/three/img.ome.tif"),
    ("to-coco out folder", ["data", "to-coco", "{W}/good", "--out", "{W}/empty_dir"],
     "{W}/empty_dir"),
    ("to-coco out ro", ["data", "to-coco", "{W}/good", "--out", "{ro}/gt.json"],
     "{ro}/gt.json"),
    ("from-coco missing", ["data", "from-coco", "{W}/nope.json", "--out", "{out}"],
     "{W}/nope.json"),
    ("from-coco empty", ["data", "from-coco", "{W}/empty.json", "--out", "{out}"],
     "{W}/empty.json"),
    ("from-coco corrupt", ["data", "from-coco", "{W}/corrupt.json", "--out", "{out}"],
     "{W}/corrupt.json"),
    ("from-coco out file", ["data", "from-coco", "{W}/gt.json", "--out", "{W}/file.txt"],
     "{W}/file.txt"),
    ("from-coco out ro", ["data", "from-coco", "{W}/gt.json", "--out", "{ro}"], "{ro}"),
    ("synth out file", ["data", "synth", "--out", "{W}/file.txt"], "{W}/file.txt"),
    ("synth out ro", ["data", "synth", "--out", "{ro}"], "{ro}"),
    ("crops missing", ["data", "crops", "{W}/nope.tif", "--out", "{out}"], "{W}/nope.tif"),
    ("crops empty", ["data", "crops", "{W}/empty.tif", "--out", "{out}"], "{W}/empty.tif"),
    ("crops corrupt", ["data", "crops", "{W}/corrupt.ome.tif", "--out", "{out}"],
     "{W}/corrupt.ome.tif"),
    ("crops channels", ["data", "crops", "{W}/three", "--nuclear-channel", "5", "--out",
                        "{out}"], "nuclear_channel 5"),
    ("crops degenerate", ["data", "crops", "{W}/good", "--out", "{out}", "--quiet"],
     "{W}/good/img.ome.tif: no crops"),
    ("crops out file", ["data", "crops", "{W}/good", "--out", "{W}/file.txt"], "{W}/file.txt"),
    ("crops out ro", ["data", "crops", "{W}/good", "--out", "{ro}"], "{ro}"),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("argv, named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_leaves_nothing(ws, tmp_path, monkeypatch, capsys,
                                                        argv, named):
    monkeypatch.chdir(tmp_path)
    ro = read_only(tmp_path / "ro", monkeypatch)
    paths = {"W": str(ws), "out": str(tmp_path / "out"), "ro": str(ro)}
    argv = [str(a).format(**paths) for a in argv]
    before_ws, before_tmp = _tree(ws), _tree(tmp_path)
    try:
        rc = main(argv)
    finally:
        ro.chmod(0o755)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert rc == 2, captured.err[-3000:]
    assert len(errors) == 1 and "Traceback" not in captured.err, captured.err[-3000:]
    assert named.format(**paths) in errors[0]
    assert _tree(ws) == before_ws and _tree(tmp_path) == before_tmp, "files left behind"
