"""``dama-det predict`` end to end with a random-weight tiny model on a folder."""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from dama_det.cli import main
from dama_det.data.coco_labels import annotations_to_label_image, folder_to_coco
from dama_det.data.tiff_io import read_label_image, write_ome_tiff


def test_predict_folder_writes_all_outputs(trained_dir, image_folder, tmp_path, capsys):
    out = tmp_path / "pred"
    rc = main(["predict", str(image_folder), "--weights", str(trained_dir / "model_final.pth"),
               "--out", str(out), "--tile-size", "128", "--overlap", "32",
               "--score-thresh", "0.3", "--batch", "2", "--device", "cpu", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "predictions.json", "slide_a_masks.tif", "slide_a_overlay.png",
        "slide_b_masks.tif", "slide_b_overlay.png"]
    preds = json.loads((out / "predictions.json").read_text())
    assert preds["categories"] == [{"id": 1, "name": "cell"}]
    # ids in name order, as `dama-det data to-coco` numbers the same folder
    gt = folder_to_coco(image_folder, progress=False)
    assert [(i["id"], i["file_name"].split("/")[-1]) for i in preds["images"]] == [
        (g["id"], g["file_name"]) for g in gt["images"]]
    for img in preds["images"]:
        labels = read_label_image(out / img["masks_file"])
        assert labels.shape == (img["height"], img["width"]) and img["channels"] == 7
        anns = [a for a in preds["annotations"] if a["image_id"] == img["id"]]
        assert len(anns) == img["num_instances"] == labels.max()
        assert all(a["score"] >= 0.3 and a["category_id"] == 1 for a in anns)
        assert np.array_equal(annotations_to_label_image(anns, *labels.shape), labels)
        png = cv2.imread(str(out / f"{img['masks_file'][:-10]}_overlay.png"))
        assert png.shape == (img["height"], img["width"], 3)
    # the evaluation reads the predictions json against that ground truth
    from dama_det.evaluation.inputs import load_results

    assert len(load_results(out / "predictions.json", gt, "pred")) == len(preds["annotations"])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_predict_errors_are_one_line(trained_dir, image_folder, tmp_path, capsys):
    weights = str(trained_dir / "model_final.pth")
    write_ome_tiff(tmp_path / "rgb.ome.tif", np.zeros((3, 64, 64), np.uint8))
    cases = [
        ([str(tmp_path / "rgb.ome.tif"), "--weights", weights], r"rgb\.ome\.tif: image has 3"),
        ([str(image_folder), "--weights", str(tmp_path / "missing.pth")], "missing.pth"),
        ([str(tmp_path / "nothing"), "--weights", weights], "nothing: no such file"),
        ([str(image_folder), "--weights", weights, "--tile-size", "64", "--overlap", "64"],
         "--overlap"),
        ([str(image_folder), "--weights", weights, "--config-file", "nope.yaml"],
         "nope.yaml: no such config"),
    ]
    for argv, pattern in cases:
        rc = main(["predict", *argv, "--out", str(tmp_path / "o"), "--device", "cpu",
                   "--quiet"])
        assert rc == 2
        assert re.search(pattern, _error_line(capsys)), pattern
    assert not (tmp_path / "o" / "predictions.json").exists()


def test_predict_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--weights", "--config-file", "--score-thresh", "--tile-size", "--overlap",
                   "--batch", "--workers", "--device", "--amp", "--out"):
        assert option in text


def test_default_tile_size_reads_the_config_then_the_training_crop():
    from dama_det import get_dama_cfg
    from dama_det.inference.predict_command import default_tile_size

    cfg = get_dama_cfg()
    cfg.INPUT.LSJ.IMAGE_SIZE = 256
    assert cfg.TEST.TILE_SIZE == 0
    assert default_tile_size(cfg) == 256
    cfg.TEST.TILE_SIZE = 1024
    assert default_tile_size(cfg) == 1024
    assert default_tile_size(cfg, 512) == 512  # --tile-size wins
