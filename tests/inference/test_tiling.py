"""Sliding-window prediction: window grid, edge rule, duplicate merging, painting.

Exactness is checked with a thresholding + connected-components "model"
(``tests.helpers.predict_fakes.threshold_predictor``), whose whole-image answer is the truth.
"""
from __future__ import annotations

import numpy as np
import pytest

from dama_det.errors import DamaUserError
from dama_det.inference.merge import merge_tile_detections, paint_labels, raster_order
from dama_det.inference.tiling import (
    Detection,
    make_tile_grid,
    predict_image_tiled,
    predict_tiles,
    tile_starts,
)
from tests.helpers.predict_fakes import blob_image, canonical, threshold_predictor


@pytest.mark.parametrize("length,tile,overlap", [(512, 128, 32), (1000, 256, 64), (300, 128, 0),
                                                 (129, 128, 16), (100, 128, 32), (2048, 256, 40)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] + min(tile, length) == length
    gaps = np.diff(starts)
    assert np.all(gaps > 0)
    assert np.all(tile - gaps >= overlap)  # neighbours overlap by at least `overlap`


def test_tile_grid_errors():
    with pytest.raises(DamaUserError, match="--overlap"):
        make_tile_grid(512, 512, 128, 128)
    with pytest.raises(DamaUserError, match="--tile-size"):
        make_tile_grid(512, 512, 8, 0)


# Big ellipses (cy, cx, ry, rx), larger than the overlaps and in no single 128-px window
# of the 512 / 128 / 32 grid (starts 0, 96, 192, 288, 384): one wide, one across a
# 2 x 2 corner, one tall.
BIG = [(60, 210, 20, 70), (210, 210, 55, 45), (400, 380, 50, 30)]


@pytest.fixture(scope="module")
def blobs():
    return blob_image(512, n_small=80, big=BIG, seed=3)


def test_fake_predictor_whole_image_is_truth(blobs):
    image, truth = blobs
    labels, _ = paint_labels(raster_order(threshold_predictor(image)), 512, 512)
    assert np.array_equal(canonical(labels), truth)


@pytest.mark.parametrize("tile,overlap,batch", [(128, 32, 1), (128, 40, 3), (256, 64, 2),
                                                (200, 50, 1)])
def test_tiled_equals_untiled(blobs, tile, overlap, batch):
    """512 x 512 image (4x the tile) tiled: every instance recovered exactly, once."""
    image, truth = blobs
    n_tiles = len(make_tile_grid(512, 512, tile, overlap))
    assert n_tiles >= 4
    dets = predict_image_tiled(image, threshold_predictor, tile_size=tile, overlap=overlap,
                               batch_size=batch)
    assert len(dets) == truth.max()
    labels, painted = paint_labels(dets, 512, 512)
    assert np.array_equal(canonical(labels), truth)
    assert len(painted) == len(dets)
    # the non-crossing instances keep the score of the whole-image run
    whole = {d.box: d.score for d in threshold_predictor(image)}
    assert all(whole[d.box] == pytest.approx(d.score, abs=1e-6) for d in dets if d.box in whole)


def test_instances_crossing_borders_merge_into_one(blobs):
    image, truth = blobs
    tiles = make_tile_grid(512, 512, 128, 32)
    per_tile = predict_tiles(image, threshold_predictor, tiles)
    # before merging, the big ellipses are split into pieces in several windows
    big_label = truth[210, 210]
    pieces = [d for _, ds in per_tile for d in ds
              if d.box[0] <= 210 < d.box[2] and d.box[1] <= 210 < d.box[3]]
    assert len(pieces) >= 4  # the 2 x 2 corner: at least four windows see the ellipse
    assert all(p.mask.sum() < (truth == big_label).sum() for p in pieces)  # all cut
    dets = merge_tile_detections(per_tile, 512, 512)
    hits = [d for d in dets if d.box[0] <= 210 < d.box[2] and d.box[1] <= 210 < d.box[3]]
    assert len(hits) == 1
    x0, y0, x1, y1 = hits[0].box
    expected = truth == big_label
    got = np.zeros_like(expected)
    got[y0:y1, x0:x1] = hits[0].mask
    assert np.array_equal(got, expected)


def test_duplicates_in_overlap_are_kept_once():
    """A blob fully inside the overlap of two windows is seen twice, kept once."""
    image = np.zeros((1, 64, 200), np.float32)
    image[0, 20:30, 95:105] = 1.0  # windows [0, 128) and [72, 200): overlap 72..128
    tiles = make_tile_grid(64, 200, 128, 40)
    per_tile = predict_tiles(image, threshold_predictor, tiles)
    assert [len(d) for _, d in per_tile] == [1, 1]
    dets = merge_tile_detections(per_tile, 64, 200)
    assert len(dets) == 1 and dets[0].box == (95, 20, 105, 30)


def test_edge_rule_drops_cut_copy():
    """A blob cut by a window's inner edge but whole in the neighbour is taken from it."""
    image = np.zeros((1, 64, 200), np.float32)
    image[0, 20:30, 120:140] = 1.0  # cut at x = 128 by window 0, whole in window 1
    tiles = make_tile_grid(64, 200, 128, 40)
    per_tile = predict_tiles(image, threshold_predictor, tiles)
    assert per_tile[0][1][0].box == (120, 20, 128, 30)  # the cut copy
    dets = merge_tile_detections(per_tile, 64, 200)
    assert len(dets) == 1 and dets[0].box == (120, 20, 140, 30) and dets[0].mask.all()


def test_detections_stay_crops(blobs):
    image, _ = blobs
    dets = predict_image_tiled(image, threshold_predictor, tile_size=128, overlap=32)
    for d in dets:
        x0, y0, x1, y1 = d.box
        assert d.mask.shape == (y1 - y0, x1 - x0) and d.mask.dtype == bool
        assert d.mask.any(0).all() and d.mask.any(1).all()  # tight boxes
        assert d.mask.size < 512 * 512 / 4


def test_paint_labels_higher_score_wins_and_drops_hidden():
    a = Detection((0, 0, 10, 10), np.ones((10, 10), bool), 0.9)
    b = Detection((5, 5, 15, 15), np.ones((10, 10), bool), 0.5)
    hidden = Detection((2, 2, 4, 4), np.ones((2, 2), bool), 0.1)
    labels, painted = paint_labels([a, hidden, b], 20, 20)
    assert labels.dtype == np.uint16
    assert labels[7, 7] == 1  # a beats b
    assert set(np.unique(labels)) == {0, 1, 2}  # hidden dropped, labels renumbered
    assert painted[1].score == 0.5 and painted[1].mask.sum() == 100 - 25
    assert painted[1].box == (5, 5, 15, 15)
