"""Cell-crop extraction (Otsu + erosion + watershed) on a synthetic tile, and errors."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dama_det.cli import main
from dama_det.data.crops import extract_cell_crops, find_tiff_inputs
from dama_det.data.synth import CHANNEL_NAMES, render_tile
from dama_det.data.tiff_io import read_image, write_label_image, write_ome_tiff
from dama_det.errors import DamaUserError


@pytest.fixture(scope="module")
def tile(tmp_path_factory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("tile")
    rendered = render_tile(384, seed=7, index=0)
    write_ome_tiff(folder / "tile.ome.tif", rendered.image, CHANNEL_NAMES)
    write_label_image(folder / "tile_masks.tif", rendered.labels)
    return folder, rendered.labels


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "crops.csv").open()))


def test_finds_cells_and_centres_lie_in_cells(tile, tmp_path):
    folder, labels = tile
    out = tmp_path / "crops"
    # a small crop keeps border skipping rare; tiles of 100 px exercise the stitching
    paths = extract_cell_crops([folder], out, crop_size=16, tile_size=100, progress=False)
    rows = _rows(out)
    assert len(rows) == len(paths) > 0
    centres = np.array([[int(r["y"]), int(r["x"])] for r in rows])
    # reference: cells with a sizeable visible area
    areas = np.bincount(labels.ravel())[1:]
    n_true = int((areas >= 40).sum())
    assert abs(len(rows) - n_true) <= 0.3 * n_true, (len(rows), n_true)
    hit = labels[centres[:, 0], centres[:, 1]]
    assert (hit > 0).mean() >= 0.9
    # no cell found twice across tile borders
    d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 3
    assert np.unique(hit[hit > 0]).size >= 0.9 * (hit > 0).sum()
    # the folder's *_masks.tif was not taken as an image
    assert {r["source"] for r in rows} == {str(folder / "tile.ome.tif")}


def test_crops_content_and_border_policy(tile, tmp_path):
    folder, _ = tile
    src, _ = read_image(folder / "tile.ome.tif")
    out = tmp_path / "crops"
    paths = extract_cell_crops([folder / "tile.ome.tif"], out, crop_size=64, progress=False)
    rows = _rows(out)
    assert len(paths) == len(rows) > 10
    for p, r in zip(paths, rows):
        assert p == out / r["file"]
        raw = tifffile.imread(p)
        assert raw.shape == (7, 64, 64) and raw.dtype == np.uint16
        y, x = int(r["y"]), int(r["x"])
        assert 32 <= y <= 384 - 32 and 32 <= x <= 384 - 32  # border crops skipped
        assert np.array_equal(raw, src[:, y - 32:y + 32, x - 32:x + 32].astype(np.uint16))
    assert read_image(paths[0])[1] == list(CHANNEL_NAMES)
    # max_crops and re-running into the same folder
    again = extract_cell_crops([folder / "tile.ome.tif"], out, crop_size=64, max_crops=3,
                               progress=False)
    assert len(again) == 3 and len(list(out.rglob("*.ome.tif"))) == 3


def test_channel_sum_option(tile, tmp_path):
    folder, labels = tile
    paths = extract_cell_crops([folder / "tile.ome.tif"], tmp_path / "c", crop_size=16,
                               nuclear_channel=-1, progress=False)
    assert len(paths) > 0.5 * labels.max()


def test_input_errors(tile, tmp_path):
    folder, _ = tile
    with pytest.raises(DamaUserError, match="no such file"):
        extract_cell_crops([tmp_path / "missing.tif"], tmp_path / "o", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DamaUserError, match="no .tif"):
        find_tiff_inputs([empty])
    three = tmp_path / "three.tif"
    tifffile.imwrite(three, np.zeros((3, 64, 64), np.uint16), photometric="minisblack")
    with pytest.raises(DamaUserError, match=r"three\.tif: image has 3 channel\(s\)"):
        extract_cell_crops([folder / "tile.ome.tif", three], tmp_path / "o", progress=False)
    with pytest.raises(DamaUserError, match="nuclear_channel 7"):
        extract_cell_crops([folder / "tile.ome.tif"], tmp_path / "o", nuclear_channel=7,
                           progress=False)
    assert not (tmp_path / "o").exists()  # nothing half-written


def _cli_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_errors(tile, tmp_path, capsys):
    folder, _ = tile
    msg = _cli_error(capsys, ["data", "crops", str(tmp_path / "nope.tif"), "--out",
                              str(tmp_path / "o")])
    assert "nope.tif" in msg
    three = tmp_path / "three.tif"
    tifffile.imwrite(three, np.zeros((3, 64, 64), np.uint16), photometric="minisblack")
    msg = _cli_error(capsys, ["data", "crops", str(folder / "tile.ome.tif"), str(three),
                              "--out", str(tmp_path / "o")])
    assert "three.tif" in msg and "3 channel" in msg


def test_degenerate_inputs_give_no_silent_empty_output(tile, tmp_path, capsys):
    """Inputs that give no crop at all are an error naming the image and why; an image
    without crops among others is a warning line."""
    folder, _ = tile
    small = tmp_path / "small.ome.tif"
    write_ome_tiff(small, np.full((7, 20, 20), 500, np.uint16))
    flat = tmp_path / "flat.ome.tif"
    write_ome_tiff(flat, np.full((7, 200, 200), 500, np.uint16))
    out = tmp_path / "o"
    msg = _cli_error(capsys, ["data", "crops", str(small), "--out", str(out), "--quiet"])
    assert "small.ome.tif: no crops: the image (20x20) is smaller than the crop size 128" in msg
    msg = _cli_error(capsys, ["data", "crops", str(flat), "--out", str(out), "--quiet"])
    assert "flat.ome.tif: no crops: the nuclear channel is uniform" in msg
    assert not out.exists()
    rc = main(["data", "crops", str(folder / "tile.ome.tif"), str(small), "--out", str(out),
               "--crop-size", "32", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert (rc == 0 and len(err) == 1 and err[0].startswith("warning: ")
            and "small.ome.tif" in err[0])
    assert _rows(out) and all("small" not in row["source"] for row in _rows(out))


def test_cli_runs(tile, tmp_path, capsys):
    folder, _ = tile
    out = tmp_path / "cli"
    rc = main(["data", "crops", str(folder), "--out", str(out), "--crop-size", "32",
               "--quiet", "--max-crops", "5"])
    assert rc == 0
    assert len(_rows(out)) == 5
    assert "wrote 5 crops" in capsys.readouterr().out
