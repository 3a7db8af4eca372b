"""Images smaller than the detector's coarsest stride (32 px): padded inside the
backbone, so prediction, the evaluation after training and ``to-coco`` work on them,
and the predictions cover the original pixels only."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dama_det.cli import main
from dama_det.data.coco_labels import label_image_to_annotations
from dama_det.data.tiff_io import read_label_image, write_label_image, write_ome_tiff
from dama_det.inference.predictor import MaskRCNNTilePredictor
from tests.helpers.disk_coco import make_disk_coco
from tests.helpers.predict_fakes import tiny_cfg
from tests.helpers.train_args import FAST

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def predictor() -> MaskRCNNTilePredictor:
    torch.manual_seed(0)
    cfg = tiny_cfg(2)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep every detection
    return MaskRCNNTilePredictor.from_config(cfg, None, device="cpu", amp="off")


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (16, 16), (20, 31), (31, 64)])
def test_tiles_smaller_than_the_model_needs_are_padded(predictor, height, width):
    assert predictor.model.backbone.min_input_size == 32
    tile = np.random.default_rng(0).random((2, height, width), dtype=np.float32)
    dets = predictor(tile)
    for (x0, y0, x1, y1), mask, _ in dets:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert mask.shape == (y1 - y0, x1 - x0)


def test_predict_cli_on_tiny_images(trained_dir, tmp_path, capsys):
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name, (h, w) in {"dot": (3, 3), "strip": (20, 90)}.items():
        write_ome_tiff(folder / f"{name}.ome.tif",
                       (rng.random((7, h, w)) * 60000).astype(np.uint16))
    out = tmp_path / "pred"
    rc = main(["predict", str(folder), "--weights", str(trained_dir / "model_final.pth"),
               "--out", str(out), "--score-thresh", "0.0", "--device", "cpu", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert read_label_image(out / "dot_masks.tif").shape == (3, 3)
    assert read_label_image(out / "strip_masks.tif").shape == (20, 90)


def _tiny_val_json(root, size: int = 3):
    """A validation set of one ``size x size`` 7-channel image with one 2 x 2 cell."""
    labels = np.zeros((size, size), np.int32)
    labels[:2, :2] = 1
    image = np.full((7, size, size), 2000, np.uint16)
    image[:, labels > 0] = 40000
    write_ome_tiff(root / "val" / "dot.ome.tif", image)
    coco = {"images": [{"id": 1, "file_name": "val/dot.ome.tif", "height": size,
                        "width": size, "channels": 7}],
            "annotations": label_image_to_annotations(labels, 1),
            "categories": [{"id": 1, "name": "cell"}]}
    path = root / "val.json"
    path.write_text(json.dumps(coco))
    return path


def test_training_evaluates_a_3x3_validation_image(tmp_path, capsys):
    root = tmp_path / "data"
    train = make_disk_coco(root, "train", n_images=1)
    val = _tiny_val_json(root)
    out = tmp_path / "run"
    rc = main(["train", "--config-file", "quick_schedules/mask_rcnn_dama_vit_instant_test.yaml",
               "--output-dir", str(out), "--train-json", str(train), "--val-json", str(val),
               "--device", "cpu", *FAST, "TEST.EVAL_PERIOD", "2"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "model_final.pth").is_file()
    assert "segm" in (out / "log.txt").read_text()  # the final evaluation ran


def test_to_coco_accepts_a_1x1_image(tmp_path, capsys):
    folder = tmp_path / "dots"
    write_ome_tiff(folder / "one.ome.tif", np.full((7, 1, 1), 100, np.uint16))
    write_label_image(folder / "one_masks.tif", np.ones((1, 1), np.int32))
    out = tmp_path / "gt.json"
    assert main(["data", "to-coco", str(folder), "--out", str(out), "--quiet"]) == 0
    coco = json.loads(out.read_text())
    assert coco["images"][0]["height"] == coco["images"][0]["width"] == 1
    assert len(coco["annotations"]) == 1 and coco["annotations"][0]["area"] == 1
