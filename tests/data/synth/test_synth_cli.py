"""``dama-det data synth`` command line."""
from __future__ import annotations

import json

import tifffile

from dama_det.cli import main


def test_synth_cli_small(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["data", "synth", "--out", str(out), "--n-train-tiles", "1", "--n-val-tiles", "1",
               "--tile-size", "96", "--n-crops-per-type", "1", "--crop-size", "32",
               "--seed", "3", "--quiet", "--no-preview"])
    assert rc == 0
    assert "wrote synthetic dataset" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["tile_size"] == 96
    assert tifffile.imread(out / "tiles" / "val" / "tile_0000.ome.tif").shape == (7, 96, 96)
    assert len(list((out / "crops").rglob("*.ome.tif"))) == 5
    assert not (out / "preview.png").exists()


def test_synth_cli_errors(tmp_path, capsys):
    rc = main(["data", "synth", "--out", str(tmp_path / "a"), "--n-train-tiles", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "n_train_tiles" in err[0]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2\n")
    rc = main(["data", "synth", "--out", str(foreign), "--tile-size", "64", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "foreign" in err[0] and "not empty" in err[0]
    assert (foreign / "data.csv").read_text() == "1,2\n"
