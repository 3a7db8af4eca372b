"""The Mask R-CNN tile predictor with the tiny (instant-test) config: checkpoint loading,
crop detections, tiled prediction of an image 4x the training size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dama_det.errors import DamaUserError
from dama_det.inference.merge import paint_labels
from dama_det.inference.outputs import detections_to_coco_results
from dama_det.inference.predictor import (
    MaskRCNNTilePredictor,
    instances_to_detections,
    prepare_inference_config,
)
from dama_det.inference.tiling import predict_image_tiled
from tests.helpers.predict_fakes import blob_image, tiny_cfg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-weight tiny model saved as a Detectron2 checkpoint."""
    torch.manual_seed(0)
    pred = MaskRCNNTilePredictor.from_config(tiny_cfg(), None, device="cpu", amp="off",
                                             score_thresh=0.0)
    path = tmp_path_factory.mktemp("ckpt") / "model_final.pth"
    torch.save({"model": pred.model.state_dict(), "iteration": 1}, path)
    return path, pred


def test_checkpoint_loads_into_identical_model(checkpoint):
    path, original = checkpoint
    loaded = MaskRCNNTilePredictor.from_config(tiny_cfg(), path, device="cpu", amp="off",
                                               score_thresh=0.0)
    tile = np.random.default_rng(0).random((7, 128, 128), dtype=np.float32)
    a, b = original(tile), loaded(tile)
    assert len(a) == len(b) > 0
    assert [d.score for d in a] == [d.score for d in b]
    assert [d.box for d in a] == [d.box for d in b]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a, b))
    assert not loaded.model.training


def test_checkpoint_mismatch_is_a_user_error(checkpoint, tmp_path):
    path, _ = checkpoint
    with pytest.raises(DamaUserError, match=r"shape .*wrong --config-file"):
        MaskRCNNTilePredictor.from_config(tiny_cfg(channels=3), path, device="cpu", amp="off")
    with pytest.raises(DamaUserError, match="weights file not found"):
        MaskRCNNTilePredictor.from_config(tiny_cfg(), tmp_path / "none.pth", device="cpu")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DamaUserError, match="cannot read checkpoint"):
        MaskRCNNTilePredictor.from_config(tiny_cfg(), tmp_path / "bad.pth", device="cpu")
    torch.save({"model": {}}, tmp_path / "empty.pth")
    with pytest.raises(DamaUserError, match="lacks"):
        MaskRCNNTilePredictor.from_config(tiny_cfg(), tmp_path / "empty.pth", device="cpu")


def test_inference_config_drops_what_the_checkpoint_overrides():
    """A run trained from an export, or with a redrawn ViT (compare's 'redraw'), predicts
    from its checkpoint alone: neither the export nor the redraw is repeated."""
    cfg = tiny_cfg()
    cfg.MODEL.DAMA_VIT.ENCODER_WEIGHTS = "encoder.pth"
    cfg.MODEL.DAMA_VIT.INIT_SEED = 1003
    prepared = prepare_inference_config(cfg, score_thresh=0.3)
    assert prepared.MODEL.DAMA_VIT.ENCODER_WEIGHTS == "" and prepared.MODEL.DAMA_VIT.INIT_SEED == -1
    assert prepared.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.3 and prepared.is_frozen()
    assert cfg.MODEL.DAMA_VIT.INIT_SEED == 1003  # the training config is left as it was


def test_mask_paste_into_crops_matches_detectron2_full_paste():
    from detectron2.layers import paste_masks_in_image

    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[3.3, 4.6, 20.2, 15.9], [0.0, 0.0, 64.0, 48.0], [50.5, 40.2, 63.9, 47.7]])
    probs = torch.rand((3, 28, 28), generator=gen)
    dets = instances_to_detections(boxes, torch.tensor([0.9, 0.8, 0.7]), probs, 48, 64)
    full = paste_masks_in_image(probs, boxes, (48, 64)).numpy()
    assert len(dets) == 3
    for d, m in zip(sorted(dets, key=lambda d: -d.score), full):
        got = np.zeros_like(m)
        x0, y0, x1, y1 = d.box
        got[y0:y1, x0:x1] = d.mask
        assert np.array_equal(got, m)


def test_tiled_prediction_with_tiny_model(checkpoint):
    """512 x 512 x 7 (4x the 128-px training size) by 2 x 2 320-px windows, batch 2."""
    _, pred = checkpoint
    image, _ = blob_image(512, n_small=40, channels=7, seed=1)
    dets = predict_image_tiled(image, pred, tile_size=320, overlap=64, batch_size=2)
    assert len(dets) > 0
    for d in dets:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
        assert d.mask.shape == (y1 - y0, x1 - x0) and d.mask.any()
        assert 0.0 <= d.score <= 1.0
    labels, painted = paint_labels(dets, 512, 512)
    assert labels.max() == len(painted) > 0
    results = detections_to_coco_results(painted, 1, 512, 512)
    assert sum(r["area"] for r in results) == np.count_nonzero(labels)
    # a single window is exactly the plain prediction of that window
    one = predict_image_tiled(image[:, :128, :128], pred, tile_size=128, overlap=32)
    direct = sorted(pred(image[:, :128, :128]), key=lambda d: (d.box[1], d.box[0], d.box[3],
                                                               d.box[2], -d.score))
    assert [d.box for d in one] == [d.box for d in direct]
    # bf16 autocast runs on CPU too
    bf16 = MaskRCNNTilePredictor(pred.model, torch.device("cpu"), torch.bfloat16)
    assert isinstance(bf16(image[:, :128, :128]), list)
    with pytest.raises(DamaUserError, match="expects 7 channels"):
        pred(image[:3, :128, :128])
