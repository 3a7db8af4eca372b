"""`dama-det pretrain` / `dama-det export` command lines: grouped --help, a short run,
and one clear `error:` line (exit 2) for every bad input."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from dama_det.cli import main
from dama_det.encoder_export.format import load_encoder_export
from tests.helpers.pretrain_crops import small_args, write_crops


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    assert err[0].startswith("error: ")
    return err[0]


def test_help_groups_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for group in ("data:", "model:", "method:", "optimisation:", "output:", "distributed:"):
        assert group in text
    for flag in ("--data", "--model", "--weight-init", "--method", "--mask-ratio", "--blr",
                 "--accum-iter", "--amp", "--resume", "--output-dir", "--slurm", "--nodes",
                 "--ngpus"):
        assert flag in text
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "--out" in capsys.readouterr().out


def test_cli_pretrain_then_export(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    out = tmp_path / "run"
    assert main(["pretrain", *small_args(data, out, "--epochs", "1", "--method", "mae",
                                         "--weight-init", "trunc_normal")]) == 0
    assert "encoder export" in capsys.readouterr().out
    ckpt = torch.load(out / "checkpoint-last.pth", map_location="cpu", weights_only=False)
    assert ckpt["model_config"]["weight_init"] == "trunc_normal"
    assert main(["export", str(out / "checkpoint-last.pth"),
                 "--out", str(tmp_path / "enc.pth")]) == 0
    assert "wrote" in capsys.readouterr().out
    meta = load_encoder_export(tmp_path / "enc.pth")
    assert meta["method"] == "mae" and meta["epoch"] == 1


def test_wrong_channel_count(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4, channels=3)
    assert main(["pretrain", *small_args(data, tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "3 channel(s)" in line and "expects 7" in line and "crop000" in line


def test_image_size_not_divisible_by_patch(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    assert main(["pretrain", *small_args(data, tmp_path / "o"), "--img-size", "36"]) == 2
    assert "not divisible by patch size 8" in _error_line(capsys)


def test_empty_and_missing_folder(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["pretrain", *small_args(tmp_path / "empty", tmp_path / "o")]) == 2
    assert "no TIFF crops" in _error_line(capsys)
    assert main(["pretrain", *small_args(tmp_path / "nope", tmp_path / "o")]) == 2
    assert "no such data folder" in _error_line(capsys)


def test_corrupt_tiff(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    (data / "type0" / "broken.tif").write_bytes(b"II*\x00" + b"\x07" * 50)
    assert main(["pretrain", *small_args(data, tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "broken.tif" in line and "cannot read as TIFF" in line


def test_truncated_pixel_data_in_a_worker_is_one_line(tmp_path, capsys):
    """A file whose header is fine but whose pixels are cut off fails while loading
    (in a DataLoader worker); the error still comes out as one line."""
    data = write_crops(tmp_path / "crops", 4)
    bad = data / "type0" / "cut.tif"
    tifffile.imwrite(bad, np.ones((7, 32, 32), np.uint16), compression=None,
                     metadata={"axes": "CYX"})
    raw = bad.read_bytes()
    start = raw.find(b"\x01\x00\x01\x00" * 8)  # first pixels
    bad.write_bytes(raw[: start + 100])
    rc = main(["pretrain", *small_args(data, tmp_path / "o"), "--num-workers", "1",
               "--batch-size", "5"])
    assert rc == 2
    assert "cut.tif" in _error_line(capsys)


def test_too_few_crops_and_bad_options(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 3)
    assert main(["pretrain", *small_args(data, tmp_path / "o"), "--batch-size", "8"]) == 2
    assert "fewer than one batch" in _error_line(capsys)
    assert main(["pretrain", *small_args(data, tmp_path / "o"), "--mask-ratio", "0.3"]) == 2
    assert "--mask-ratio >= 0.5" in _error_line(capsys)
    assert main(["pretrain", *small_args(data, tmp_path / "o"), "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in _error_line(capsys)


def test_bad_checkpoint_for_export_and_resume(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert main(["export", str(junk), "--out", str(tmp_path / "e.pth")]) == 2
    assert "cannot load checkpoint" in _error_line(capsys)
    assert not (tmp_path / "e.pth").exists()
    torch.save({"model": {}}, tmp_path / "other.pth")
    assert main(["export", str(tmp_path / "other.pth"), "--out", str(tmp_path / "e.pth")]) == 2
    assert "not a dama-det pretraining checkpoint" in _error_line(capsys)
    data = write_crops(tmp_path / "crops", 4)
    assert main(["pretrain", *small_args(data, tmp_path / "o"),
                 "--resume", str(tmp_path / "none.pth")]) == 2
    assert "no such checkpoint" in _error_line(capsys)


def test_resume_with_other_architecture_is_refused(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    assert main(["pretrain",
                 *small_args(data, tmp_path / "o", "--epochs", "1", "--method", "mae")]) == 0
    capsys.readouterr()
    ckpt = tmp_path / "o" / "checkpoint-last.pth"
    rc = main(["pretrain", *small_args(data, tmp_path / "o", "--epochs", "2", "--method", "mae"),
               "--patch-size", "16", "--resume", str(ckpt)])
    assert rc == 2
    assert "patch_size" in _error_line(capsys)


def test_default_data_is_generated_synthetic_crops(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "--output-dir", str(out), "--model", "test", "--img-size", "64",
            "--synthetic-per-type", "1", "--batch-size", "4", "--epochs", "1", "--num-workers", "0",
            "--no-progress", "--vis-every", "0"]
    assert main(args) == 0
    crops = sorted((out / "synthetic_crops").rglob("*.tif"))
    assert len(crops) == 5  # one per cell type
    meta = load_encoder_export(out / "encoder.pth")
    assert meta["channel_names"] == ["DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"]
    # a second run (e.g. resuming) reuses the generated crops
    stamp = crops[0].stat().st_mtime_ns
    assert main(args + ["--resume", "auto", "--epochs", "2"]) == 0
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    assert crops[0].stat().st_mtime_ns == stamp
    assert "generating" not in capsys.readouterr().out.split("resumed")[-1]
