"""Input standardisation (per-channel mean/std of the training data) in detection and
pretraining, and the untrained export (the `init` control)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from dama_det.cli import main
from dama_det.data.pixel_stats import pixel_stats
from dama_det.encoder_export.format import load_encoder_export
from dama_det.errors import DamaUserError
from tests.helpers.disk_coco import make_disk_coco
from tests.helpers.pretrain_crops import blob_images, small_args, write_crops


def test_pixel_stats_are_pixel_weighted_per_channel():
    rng = np.random.default_rng(0)
    images = {"a": rng.random((2, 4, 6)), "b": rng.random((2, 8, 3)) * 3 + 1}
    mean, std = pixel_stats(["a", "b"], images.__getitem__)
    flat = np.concatenate([images[k].reshape(2, -1) for k in "ab"], axis=1)
    assert mean == pytest.approx(flat.mean(axis=1), rel=1e-5)
    assert std == pytest.approx(flat.std(axis=1), rel=1e-5)


def test_pixel_stats_constant_channel_sample_and_errors():
    images = [np.stack([np.full((3, 3), 0.5), np.arange(9.0).reshape(3, 3)]) for _ in range(5)]
    mean, std = pixel_stats(range(5), images.__getitem__)
    assert mean == [0.5, 4.0] and std[0] == 1.0  # nothing to standardise
    seen = []
    pixel_stats(list(range(20)), lambda i: seen.append(i) or images[0], max_images=4, seed=3)
    assert len(seen) == 4 and len(set(seen)) == 4 and seen == sorted(seen)
    with pytest.raises(DamaUserError, match="no training images"):
        pixel_stats([], images.__getitem__)
    mixed = [np.zeros((2, 3, 3)), np.zeros((1, 3, 3))]
    with pytest.raises(DamaUserError, match="1 channel"):
        pixel_stats([0, 1], mixed.__getitem__)


def _train_args(out: Path, train: Path, val: Path, *extra: str):
    from dama_det.engine import QUICK_CONFIG, build_argument_parser

    return build_argument_parser().parse_args(
        ["--config-file", QUICK_CONFIG, "--output-dir", str(out), "--train-json", str(train),
         "--val-json", str(val), *extra])


def test_detector_input_is_standardised_with_training_statistics(tmp_path):
    from detectron2.data import DatasetCatalog

    from dama_det.data.tiff_io import read_tiff
    from dama_det.engine import build_cfg
    from dama_det.engine.datasets import register_datasets_from_cfg
    from dama_det.engine.setup import apply_pixel_stats

    train = make_disk_coco(tmp_path / "d", "train", n_images=2, seed=0)
    val = make_disk_coco(tmp_path / "d", "val", n_images=1, seed=1)
    cfg = build_cfg(_train_args(tmp_path / "run", train, val))
    assert cfg.INPUT.PIXEL_STATS == "train"  # the default
    register_datasets_from_cfg(cfg)
    apply_pixel_stats(cfg)
    files = [d["file_name"] for d in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])]
    pixels = []
    for f in files:
        tiff = read_tiff(f)
        pixels.append((tiff.image / np.iinfo(tiff.dtype).max).reshape(tiff.image.shape[0], -1))
    pixels = np.concatenate(pixels, axis=1)
    assert cfg.MODEL.PIXEL_MEAN == pytest.approx(pixels.mean(axis=1), rel=1e-4)
    assert cfg.MODEL.PIXEL_STD == pytest.approx(pixels.std(axis=1), rel=1e-4)
    assert cfg.INPUT.PIXEL_STATS == "config"  # a saved config keeps these numbers

    kept = build_cfg(_train_args(tmp_path / "run2", train, val, "INPUT.PIXEL_STATS", "config"))
    register_datasets_from_cfg(kept)
    apply_pixel_stats(kept)
    assert list(kept.MODEL.PIXEL_MEAN) == [0.0] * len(kept.MODEL.PIXEL_MEAN)
    bad = build_cfg(_train_args(tmp_path / "run3", train, val, "INPUT.PIXEL_STATS", "imagenet"))
    with pytest.raises(DamaUserError, match="INPUT.PIXEL_STATS"):
        apply_pixel_stats(bad)


def test_pretraining_standardises_its_input_by_default_and_records_it(tmp_path, capsys):
    data = write_crops(tmp_path / "crops", 4)
    out = tmp_path / "run"
    assert main(["pretrain", *small_args(data, out, "--epochs", "1", "--method", "mae")]) == 0
    assert "input standardisation from the crops" in capsys.readouterr().out
    meta = load_encoder_export(out / "encoder.pth")
    crops = np.stack([tifffile.imread(p).astype(np.float64) / 65535
                      for p in sorted((tmp_path / "crops").rglob("*.tif"))])
    assert meta["pixel_mean"] == pytest.approx(crops.mean(axis=(0, 2, 3)), rel=1e-4)
    assert meta["pixel_std"] == pytest.approx(crops.std(axis=(0, 2, 3)), rel=1e-4)
    # export of the checkpoint carries the same numbers
    assert main(["export", str(out / "checkpoint-last.pth"), "--out", str(tmp_path / "e.pth")]) == 0
    assert load_encoder_export(tmp_path / "e.pth")["pixel_mean"] == meta["pixel_mean"]
    # --pixel-stats none: the paper's plain scaling, nothing recorded
    assert main(["pretrain", *small_args(data, tmp_path / "plain", "--epochs", "1",
                                         "--method", "mae", "--pixel-stats", "none")]) == 0
    assert load_encoder_export(tmp_path / "plain" / "encoder.pth")["pixel_mean"] is None


def test_pretrainer_forward_standardises():
    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.models_mae import mae_config

    imgs = torch.from_numpy(blob_images(2, channels=2, size=32)) * 0.1
    mean, std = (0.02, 0.05), (0.03, 0.01)
    kw = dict(img_size=32, patch_size=8, in_chans=2)
    std_model = DAMAPretrainer(mae_config("test", pixel_mean=mean, pixel_std=std, **kw),
                               MethodConfig(method="mae", mask_ratio=0.75))
    plain = DAMAPretrainer(mae_config("test", **kw), MethodConfig(method="mae", mask_ratio=0.75))
    plain.load_state_dict(std_model.state_dict())  # the stats are not in the state dict
    manual = (imgs - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(std).view(1, 2, 1, 1)
    torch.manual_seed(0)
    a = std_model(imgs)[0]
    torch.manual_seed(0)
    b = plain(manual)[0]
    torch.manual_seed(0)
    c = plain(imgs)[0]
    assert torch.allclose(a, b) and not torch.allclose(a, c)
    with pytest.raises(DamaUserError, match="2 value"):
        DAMAPretrainer(mae_config("test", pixel_mean=(0.0,), pixel_std=(1.0,), **kw),
                       MethodConfig(method="mae", mask_ratio=0.75))


def test_untrained_export_is_the_seeded_initialisation_and_loads(tmp_path, capsys):
    from dama_det.modeling.encoder_weights import load_encoder_into_vit
    from dama_det.pretrain.driver import build_model
    from dama_det.pretrain.options import parse_pretrain_args
    from dama_det.utils.rng import seed_everything

    args = small_args(tmp_path / "no-data-needed", tmp_path / "init", "--method", "dama",
                      "--seed", "3", "--untrained")
    assert main(["pretrain", *args]) == 0
    printed = capsys.readouterr().out
    assert "untrained dama encoder export" in printed
    assert "records no input standardisation" in printed  # no data folder to measure
    meta = load_encoder_export(tmp_path / "init" / "encoder.pth")
    assert meta["epoch"] == 0 and meta["method"] == "dama"
    assert not (tmp_path / "init" / "checkpoint-last.pth").exists()
    seed_everything(3)
    ref = build_model(parse_pretrain_args(args)).encoder_state_dict()
    assert set(ref) == set(meta["model"])
    assert all(torch.equal(ref[k], meta["model"][k]) for k in ref)
    # a pretraining run with the same seed starts from exactly these weights
    data = write_crops(tmp_path / "crops", 4)
    assert main(["pretrain", *small_args(data, tmp_path / "trained", "--method", "dama",
                                         "--seed", "3", "--epochs", "1", "--lr", "0")]) == 0
    trained_export = load_encoder_export(tmp_path / "trained" / "encoder.pth")
    trained = trained_export["model"]
    assert all(torch.equal(trained[k], meta["model"][k]) for k in ref)
    # without a data folder the export records no standardisation, and says so; with
    # one it records what the pretraining run records, and the weights stay the start
    assert meta["pixel_mean"] is None and trained_export["pixel_mean"] is not None
    assert main(["pretrain", *small_args(data, tmp_path / "init_data", "--method", "dama",
                                         "--seed", "3", "--untrained")]) == 0
    with_stats = load_encoder_export(tmp_path / "init_data" / "encoder.pth")
    assert with_stats["pixel_mean"] == trained_export["pixel_mean"]
    assert with_stats["pixel_std"] == trained_export["pixel_std"]
    assert all(torch.equal(with_stats["model"][k], meta["model"][k]) for k in ref)
    # and it goes through the detection loader like any export
    from detectron2.modeling.backbone import ViT

    vit = ViT(img_size=32, patch_size=8, in_chans=7, embed_dim=64, depth=2, num_heads=2,
              pretrain_img_size=32, pretrain_use_cls_token=True)
    report = load_encoder_into_vit(vit, tmp_path / "init" / "encoder.pth")
    assert not report.missing and not report.mismatched
    assert torch.equal(vit.blocks[0].attn.qkv.weight, meta["model"]["blocks.0.attn.qkv.weight"])
