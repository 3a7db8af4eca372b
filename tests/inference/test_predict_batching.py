"""Batched tiled inference and read-ahead workers change no output bit.

Several windows per forward (``--batch``) must give exactly the boxes, scores and masks
of one window per forward, for a partial last batch, windows of several sizes in one
batch and an image smaller than one window; reading images in DataLoader workers
(``--workers``) must give the outputs of reading them in the main process, and a user
error met in a worker must stay the same one-line error.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dama_det.cli import main
from dama_det.data.tiff_io import write_ome_tiff
from dama_det.errors import DamaUserError
from dama_det.inference.inputs import collect_inputs
from dama_det.inference.predict_images import PredictOptions, predict_and_write
from dama_det.inference.predictor import MaskRCNNTilePredictor
from dama_det.inference.tiling import ImageToTile, make_tile_grid, predict_images_tiled
from tests.helpers.predict_fakes import blob_image, threshold_predictor, tiny_cfg

TILE, OVERLAP = 128, 32


@pytest.fixture(scope="module")
def predictor():
    """The random-weight tiny model, every detection kept (hundreds per window)."""
    torch.manual_seed(0)
    return MaskRCNNTilePredictor.from_config(tiny_cfg(), None, device="cpu", amp="off",
                                             score_thresh=0.0)


@pytest.fixture(scope="module")
def images():
    """A 300 x 260 image (3 x 3 windows), two smaller than a window (100 x 90) and a
    128 x 200 one (2 windows): 13 windows of three sizes."""
    big, _ = blob_image(300, n_small=30, channels=7, seed=4)
    small, _ = blob_image(100, n_small=5, channels=7, seed=5)
    small2, _ = blob_image(100, n_small=5, channels=7, seed=9)
    wide, _ = blob_image(200, n_small=10, channels=7, seed=6)
    return [big[:, :, :260], small[:, :, :90], small2[:, :, :90], wide[:, :128]]


def _predict(images, predictor, batch_size):
    return [dets for _, dets in predict_images_tiled(
        [ImageToTile(k, im) for k, im in enumerate(images)], predictor, tile_size=TILE,
        overlap=OVERLAP, batch_size=batch_size)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.box == y.box and x.score == y.score and x.mask.dtype == y.mask.dtype
        assert np.array_equal(x.mask, y.mask)


def test_windows_per_forward_do_not_change_a_bit(predictor, images):
    assert [len(make_tile_grid(*im.shape[1:], TILE, OVERLAP)) for im in images] == [9, 1, 1, 2]
    assert images[1].shape[1] < TILE and images[1].shape[2] < TILE
    one = _predict(images, predictor, batch_size=1)
    assert all(len(d) > 0 for d in one)
    before = predictor.batcher.windows_from_batch
    # 3: [3 big] x 3, [small, small2, wide 1] (two sizes), [wide 2] (a partial last batch);
    # 5: [5 big], [4 big + small], [small2, wide 1, wide 2]
    for batch in (3, 5):
        per_image = _predict(images, predictor, batch_size=batch)
        for a, b in zip(one, per_image):
            _assert_same(a, b)
    # the encoder really ran on several windows at once (verified bit-identical)
    assert predictor.batcher.windows_from_batch > before
    assert any(predictor.batcher.batch_exact.values())


def test_batched_raw_outputs_equal_single_forward_bits(predictor, images):
    """Before rounding to pixel boxes and thresholded masks: every float of the raw
    boxes, scores and mask probabilities is the single-window forward's."""
    windows = [images[0][:, y : y + TILE, x : x + TILE] for y in (0, 172) for x in (0, 132)]
    for group in (windows, [images[1], images[2]]):
        inputs = [{"image": torch.from_numpy(np.ascontiguousarray(w)), "height": w.shape[1],
                   "width": w.shape[2]} for w in group]
        with torch.inference_mode():
            batched = predictor.batcher(inputs)
            single = [predictor.model.inference([i], do_postprocess=False)[0] for i in inputs]
        for a, b in zip(single, batched):
            assert len(a) == len(b) > 0
            assert torch.equal(a.scores, b.scores)
            assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
            assert torch.equal(a.pred_masks, b.pred_masks)


def test_predict_batch_equals_single_tile_calls(predictor, images):
    tiles = [images[0][:, y : y + TILE, x : x + TILE] for y in (0, 86, 172) for x in (0, 66)]
    tiles += [images[1], images[2]]
    batched = predictor.predict_batch(tiles)
    for tile, dets in zip(tiles, batched):
        _assert_same(predictor(tile), dets)


class _BatchSensitiveEncoder(torch.nn.Module):
    """An encoder whose batched output differs in the last bits, as a BLAS that splits
    a larger matrix product differently may give."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.encoder(x)
        if len(x) > 1:
            out = {k: v * (1 + 2 ** -20) for k, v in out.items()}
        return out


def test_batch_that_differs_falls_back_to_single_windows(images):
    torch.manual_seed(0)
    pred = MaskRCNNTilePredictor.from_config(tiny_cfg(), None, device="cpu", amp="off",
                                             score_thresh=0.0)
    one = _predict(images[:1], pred, batch_size=1)
    backbone = pred.model.backbone
    backbone.net = _BatchSensitiveEncoder(backbone.net)
    for _ in range(2):  # checked on the first batch, remembered for the next
        _assert_same(one[0], _predict(images[:1], pred, batch_size=4)[0])
    assert pred.batcher.windows_from_batch == 0
    assert set(pred.batcher.batch_exact.values()) == {False}


def _write_images(folder, dtype=np.uint16):
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (150, 200), "b": (90, 100), "c": (128, 128)}.items():
        img = (rng.random((7, h, w)) * 20000).astype(dtype)
        img[0, 30:50, 40:60] = 60000
        img[0, 60:75, 10:22] = 50000
        write_ome_tiff(folder / f"{name}.ome.tif", img, [f"c{i}" for i in range(7)])
    return folder


def _outputs(out):
    preds = json.loads((out / "predictions.json").read_text())
    preds["info"].pop("seconds")
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())
             if p.name != "predictions.json"}
    return preds, files


@pytest.mark.parametrize("scaling", ["dtype_max", "percentile"])
def test_workers_give_the_same_outputs(tmp_path, scaling):
    folder = _write_images(tmp_path / "images")
    inputs = collect_inputs([folder], expected_channels=7)
    results = []
    for workers in (0, 1, 2):
        opts = PredictOptions(num_channels=7, intensity_scaling=scaling, tile_size=64,
                              overlap=16, batch_size=3, workers=workers, progress=False)
        predict_and_write(inputs, threshold_predictor, tmp_path / f"w{workers}", opts)
        results.append(_outputs(tmp_path / f"w{workers}"))
    assert results[0][0]["annotations"] and len(results[0][1]) == 6  # 3 label TIFFs + 3 PNGs
    assert results[1] == results[0] and results[2] == results[0]


def test_unreadable_image_in_a_worker_is_the_same_user_error(tmp_path):
    folder = _write_images(tmp_path / "images")
    inputs = collect_inputs([folder], expected_channels=7)
    (folder / "b.ome.tif").write_bytes(b"II*\x00 no longer a TIFF")  # changed after the check
    messages = []
    for workers in (0, 1):
        opts = PredictOptions(num_channels=7, tile_size=64, overlap=16, workers=workers,
                              progress=False)
        with pytest.raises(DamaUserError) as exc:
            predict_and_write(inputs, threshold_predictor, tmp_path / f"w{workers}", opts)
        messages.append(str(exc.value))
        assert not (tmp_path / f"w{workers}" / "predictions.json").exists()
    assert messages[0] == messages[1]
    assert "b.ome.tif" in messages[0] and "\n" not in messages[0]
    assert "Traceback" not in messages[0] and "worker" not in messages[0]


def test_cli_batch_and_workers_keep_outputs(tmp_path, predictor):
    weights = tmp_path / "model_final.pth"
    torch.save({"model": predictor.model.state_dict(), "iteration": 1}, weights)
    (tmp_path / "config.yaml").write_text(tiny_cfg().dump())
    folder = _write_images(tmp_path / "images")
    runs = {"one": ["--batch", "1", "--workers", "0"], "many": ["--batch", "3", "--workers", "2"]}
    for name, opts in runs.items():
        rc = main(["predict", str(folder), "--weights", str(weights), "--out",
                   str(tmp_path / name), "--tile-size", "128", "--overlap", "32",
                   "--score-thresh", "0.2", "--device", "cpu", "--amp", "off", "--quiet", *opts])
        assert rc == 0
    one, many = _outputs(tmp_path / "one"), _outputs(tmp_path / "many")
    assert one[0]["annotations"] and one == many
    for option in ("--batch", "--workers"):
        with pytest.raises(SystemExit):
            main(["predict", str(folder), "--weights", str(weights), "--out",
                  str(tmp_path / "x"), option, "-1"])
