"""Flip test-time augmentation (``dama-det predict --tta``): the four views, box voting,
mask averaging, and the property that makes it worth its cost: a prediction of a
flipped tile is the flipped prediction of the tile."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dama_det.cli import main
from dama_det.errors import DamaUserError
from dama_det.inference.flip_tta import flip_views, vote_over_views
from dama_det.inference.predictor import MaskRCNNTilePredictor
from tests.helpers.predict_fakes import blob_image, tiny_cfg
from tests.helpers.predict_fixtures import image_folder, trained_dir  # noqa: F401

SIZE = 128


@pytest.fixture(scope="module")
def predictors():
    """The random-weight tiny model without and with flip TTA (every detection kept)."""
    torch.manual_seed(0)
    plain = MaskRCNNTilePredictor.from_config(tiny_cfg(), None, device="cpu", amp="off",
                                              score_thresh=0.0)
    tta = MaskRCNNTilePredictor(plain.model, torch.device("cpu"), tta="flip",
                                cfg=plain.cfg)
    return plain, tta


def _mirror(boxes: torch.Tensor, masks: torch.Tensor, axis: str):
    """Boxes ``(N, 4)`` and masks ``(N, 1, M, M)`` of a tile flipped along ``axis``."""
    b = boxes.clone()
    if axis == "h":
        b[:, [0, 2]] = SIZE - boxes[:, [2, 0]]
        return b, masks.flip(3)
    b[:, [1, 3]] = SIZE - boxes[:, [3, 1]]
    return b, masks.flip(2)


def _instances(predictor, image: np.ndarray):
    inputs = {"image": torch.from_numpy(np.ascontiguousarray(image)), "height": SIZE,
              "width": SIZE}
    with torch.inference_mode():
        if predictor.tta is not None:
            return predictor.tta.predict(inputs)
        return predictor.batcher([inputs])[0]


def test_flip_views_are_the_four_flips_and_map_back():
    image = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    views = flip_views({"image": image, "height": 3, "width": 4})
    assert [v["image"].shape for v in views] == [(2, 3, 4)] * 4
    assert torch.equal(views[0]["image"], image)
    assert torch.equal(views[1]["image"], image.flip(-1))
    assert torch.equal(views[2]["image"], image.flip(-2))
    assert torch.equal(views[3]["image"], image.flip(-1, -2))
    box = np.array([[1.0, 0.5, 3.0, 2.0]])  # x0 y0 x1 y1 in the 4 x 3 tile
    mapped = [v["transforms"].apply_box(box)[0].tolist() for v in views]
    assert mapped == [[1.0, 0.5, 3.0, 2.0], [1.0, 0.5, 3.0, 2.0], [1.0, 1.0, 3.0, 2.5],
                      [1.0, 1.0, 3.0, 2.5]]
    for v in views:  # and back
        assert np.allclose(v["transforms"].inverse().apply_box(
            v["transforms"].apply_box(box)), box)


def test_vote_over_views_counts_each_views_best_overlapping_box():
    kept = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],    # view 0: the first kept box, 1.0
                          [50.0, 50.0, 60.0, 60.0],  # view 0: the second kept box, 0.7
                          [0.0, 0.0, 10.0, 11.0],    # view 1: IoU 0.91 with the first, 0.5
                          [0.0, 0.0, 10.0, 12.0],    # view 1: IoU 0.83, but view 1's 2nd best
                          [1.0, 1.0, 11.0, 11.0]])   # view 2: IoU 0.68, 0.9; view 3: nothing
    scores = torch.tensor([1.0, 0.7, 0.5, 0.4, 0.9])
    views = torch.tensor([0, 0, 1, 1, 2])
    voted, consensus = vote_over_views(kept, boxes, scores, views, 4, iou=0.8)
    assert torch.allclose(voted[0], torch.tensor([0.0, 0.0, 10.0, 31 / 3]))
    assert torch.equal(voted[1], kept[1])
    assert torch.allclose(consensus, torch.tensor([1.5 / 4, 0.7 / 4]))  # seen in 2 / 1 views
    voted, consensus = vote_over_views(kept, boxes, scores, views, 4, iou=0.6)
    assert torch.allclose(consensus[0], torch.tensor(2.4 / 4))  # view 2's box votes too
    assert torch.allclose(voted[0], (boxes[[0, 2, 4]] * scores[[0, 2, 4], None]).sum(0) / 2.4)
    empty, none = vote_over_views(kept[:0], boxes, scores, views, 4)
    assert empty.shape == (0, 4) and none.shape == (0,)


@pytest.mark.parametrize("axis", ["h", "v"])
def test_tta_prediction_of_a_flipped_tile_is_the_flipped_prediction(predictors, axis):
    plain, tta = predictors
    image, _ = blob_image(SIZE, n_small=10, channels=7, seed=1)
    flipped = image[:, :, ::-1] if axis == "h" else image[:, ::-1, :]
    a, b = _instances(tta, image), _instances(tta, flipped)
    assert len(a) == len(b) > 0 and a.pred_masks.shape[1:] == (1, 28, 28)
    assert torch.allclose(a.scores, b.scores, atol=1e-6)
    boxes, masks = _mirror(b.pred_boxes.tensor, b.pred_masks, axis)
    assert torch.allclose(boxes, a.pred_boxes.tensor, atol=1e-3)
    assert torch.allclose(masks, a.pred_masks, atol=1e-5)
    # without TTA the (random-weight) model is not equivariant: the test can fail
    p, q = _instances(plain, image), _instances(plain, flipped)
    boxes, _ = _mirror(q.pred_boxes.tensor, q.pred_masks, axis)
    assert len(p) != len(q) or not torch.allclose(boxes, p.pred_boxes.tensor, atol=1e-3)


def test_tta_modes_detections_and_errors(predictors):
    plain, tta = predictors
    image, _ = blob_image(SIZE, n_small=10, channels=7, seed=1)
    nms = MaskRCNNTilePredictor(plain.model, torch.device("cpu"), tta="flip-nms",
                                cfg=plain.cfg)
    voted, kept = _instances(tta, image), _instances(nms, image)
    # the same instances (score threshold 0); the vote moves boxes, and an instance's
    # score, a mean over the views, is at most its best view's, which NMS keeps
    assert len(voted) == len(kept)
    assert not torch.equal(voted.pred_boxes.tensor, kept.pred_boxes.tensor)
    assert (voted.pred_boxes.tensor - kept.pred_boxes.tensor).abs().max() < 8
    assert (voted.scores <= kept.scores + 1e-6).all() and (voted.scores < kept.scores).any()
    dets = tta(image)
    assert all(d.mask.shape == (d.box[3] - d.box[1], d.box[2] - d.box[0]) for d in dets)
    bf16 = MaskRCNNTilePredictor(plain.model, torch.device("cpu"), torch.bfloat16, tta="flip",
                                 cfg=plain.cfg)
    assert isinstance(bf16(image), list)
    none = MaskRCNNTilePredictor(plain.model, torch.device("cpu"), tta="flip",
                                 cfg=_with_score_thresh(plain.cfg, 1.0))
    assert none(image) == []
    with pytest.raises(DamaUserError, match="tta must be one of off, flip, flip-nms"):
        MaskRCNNTilePredictor(plain.model, torch.device("cpu"), tta="rot", cfg=plain.cfg)


def _with_score_thresh(cfg, value):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = value
    return cfg


def test_predict_cli_tta(trained_dir, image_folder, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "pred"
    rc = main(["predict", str(image_folder), "--weights", str(trained_dir / "model_final.pth"),
               "--out", str(out), "--tile-size", "128", "--overlap", "32", "--tta", "flip",
               "--score-thresh", "0.3", "--device", "cpu", "--quiet", "--no-overlay"])
    assert rc == 0, capsys.readouterr().err
    preds = json.loads((out / "predictions.json").read_text())
    assert preds["info"]["tta"] == "flip" and len(preds["images"]) == 2
    assert all(a["score"] >= 0.3 for a in preds["annotations"])
