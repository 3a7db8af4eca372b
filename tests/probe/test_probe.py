"""``dama-det probe``: a trained encoder beats its random counterpart, the probes on
known features, dense patch targets, the split by image, the CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from dama_det.classification.model import centre_patch_grid
from dama_det.cli import main
from dama_det.data.tiff_io import write_label_image, write_ome_tiff
from dama_det.encoder_export.format import save_encoder_export
from dama_det.errors import DamaUserError
from dama_det.pretrain.models_mae import MaskedAutoencoderViT, mae_config
from dama_det.probe.dense import IGNORE, build_dense_tiles, patch_targets, tile_origins
from dama_det.probe.features import (
    build_probe_encoder,
    extract_features,
    random_export,
    random_export_like,
    random_export_of_size,
)
from dama_det.probe.knn import knn_probe
from dama_det.probe.linear import linear_probe
from dama_det.probe.run import run_probes
from dama_det.probe.splits import group_split, stratified_folds, subsample

# ------------------------------------------------------------------ the constructed task
# Two channels, 32 x 32, patch 8. Channel 0 is strong smooth clutter (std 2), the same
# for both classes; channel 1 is 0.5 + pixel noise (std 0.1) + a faint uniform offset
# of -0.02 (class 0) or +0.02 (class 1). Averaged over the image the offset is ~13
# noise standard deviations, so an encoder that reads channel 1 and ignores channel 0
# separates the classes; a random encoder mixes both channels into every feature and
# the clutter swamps the offset (k-NN at chance, the linear probe ~0.7). 400 supervised
# steps (a few seconds) teach the encoder that: both probes then reach ~0.95.
TOY = 32
TOY_PATCH = 8


def _toy_batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2, 32, 32)`` float32 images and ``(n,)`` labels (alternating 0/1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    clutter = np.stack([gaussian_filter(rng.standard_normal((TOY, TOY)), 1.0) for _ in range(n)])
    clutter /= clutter.std(axis=(1, 2), keepdims=True)
    x = np.empty((n, 2, TOY, TOY), np.float32)
    x[:, 0] = 0.5 + 2.0 * clutter
    x[:, 1] = 0.5 + 0.1 * rng.standard_normal((n, TOY, TOY)) + 0.02 * (2 * y - 1)[:, None, None]
    return x, y


def _train_toy_export(path, steps: int = 400, seed: int = 0, batch: int = 32):
    """A `test`-size MAE encoder trained supervised (mean-pooled latent + linear head,
    fresh batches each step) and written as an encoder export."""
    cfg = mae_config("test", img_size=TOY, patch_size=TOY_PATCH, in_chans=2)
    torch.manual_seed(seed)
    mae = MaskedAutoencoderViT(cfg)
    head = torch.nn.Linear(cfg.embed_dim, 2)
    opt = torch.optim.Adam([*mae.parameters(), *head.parameters()], lr=3e-3)
    ids = torch.arange(mae.num_patches)[None].expand(batch, -1)
    for step in range(steps):
        x, y = _toy_batch(batch, seed=1000 + step)
        latent, _ = mae.forward_encoder(torch.from_numpy(x), ids)
        loss = F.cross_entropy(head(latent[:, 1:].mean(1)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_encoder_export(path, mae.encoder_state_dict(), img_size=TOY,
                               patch_size=TOY_PATCH, in_chans=2, embed_dim=cfg.embed_dim,
                               depth=cfg.depth, num_heads=cfg.num_heads,
                               method="supervised-toy", epoch=steps)


def _write_crops(folder, images: np.ndarray, labels: np.ndarray, names=("dim", "bright")):
    """A celltype folder: float32 OME-TIFF crops + labels.csv (file, cell_type)."""
    rows = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        rel = f"{names[lab]}/crop_{i:05d}.ome.tif"
        write_ome_tiff(folder / rel, img, compression=None)
        rows.append((rel, names[lab]))
    with (folder / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("file", "cell_type"), *rows])
    return folder


def test_trained_toy_encoder_beats_its_random_counterpart(tmp_path):
    export = _train_toy_export(tmp_path / "toy.pth")
    x, y = _toy_batch(200, seed=0)
    data = _write_crops(tmp_path / "crops", x, y)
    # the toy encoder was trained on the mean of all patch tokens, and the cue is uniform
    res = run_probes(export, "celltype", data, with_random=True, seed=0, pool="mean",
                     progress=False)

    trained, rnd = res, res["random"]
    assert res["dataset"]["class_counts"] == [100, 100]
    assert res["encoder"]["source"] == str(export) and rnd["encoder"]["source"] == "random"
    assert rnd["encoder"]["embed_dim"] == 64 and rnd["encoder"]["depth"] == 2
    for probe in ("knn", "linear"):
        assert trained[probe]["accuracy"] >= 0.85, (probe, trained[probe]["accuracy"])
        assert trained[probe]["accuracy"] >= rnd[probe]["accuracy"] + 0.15, \
            (probe, trained[probe]["accuracy"], rnd[probe]["accuracy"])
        assert res["delta"][f"{probe}_accuracy"] == pytest.approx(
            trained[probe]["accuracy"] - rnd[probe]["accuracy"])
    assert rnd["knn"]["accuracy"] < 0.65  # the random encoder's neighbours: ~chance


# ------------------------------------------------------- the crop feature: centre or mean
# A cell-centred crop: channel 1 is +0.2 over the central 16 x 16 px (the labelled cell)
# and -0.2 / 3 around it (its neighbours, of the other class) for class 1, the opposite
# for class 0, plus pixel noise (std 0.1) on both channels. The image-wide mean of every
# channel is the same for both classes; only the centre tells them apart.
def _centred_batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centre = np.zeros((TOY, TOY), bool)
    centre[8:24, 8:24] = True
    cue = np.where(centre, 0.2, -0.2 / 3)[None] * (2 * y - 1)[:, None, None]
    x = 0.5 + 0.1 * rng.standard_normal((n, 2, TOY, TOY))
    x[:, 1] += cue
    return x.astype(np.float32), y


def test_centre_patch_grid_covers_the_image_centre():
    assert centre_patch_grid(8, 8) == (slice(3, 5), slice(3, 5))
    assert centre_patch_grid(7, 7) == (slice(3, 4), slice(3, 4))
    assert centre_patch_grid(4, 6) == (slice(1, 3), slice(2, 4))
    assert centre_patch_grid(1, 2) == (slice(0, 1), slice(0, 2))
    for n in range(1, 12):  # symmetric about the centre: as many patches before as after
        rows, _ = centre_patch_grid(n, n)
        assert rows.start == n - rows.stop and rows.stop - rows.start == 2 - n % 2


def test_centre_pool_is_the_mean_of_the_central_patch_tokens():
    export = random_export_of_size("test", img_size=32, in_chans=2, patch_size=8, seed=0)
    x = torch.rand(3, 2, 32, 32)
    mean_pooled, patches = extract_features(build_probe_encoder(export, name="random"), x)
    centre, patches_c = extract_features(
        build_probe_encoder(export, name="random", pool="centre"), x)
    torch.testing.assert_close(patches_c, patches)
    grid = patches.view(3, 4, 4, -1)  # row-major 4 x 4 grid
    torch.testing.assert_close(centre, grid[:, 1:3, 1:3].mean(dim=(1, 2)))
    torch.testing.assert_close(mean_pooled, patches.mean(1))
    with pytest.raises(DamaUserError, match="pooling 'max'"):
        build_probe_encoder(export, name="random", pool="max")


def test_centre_readout_tells_the_labelled_cell_from_its_neighbours(tmp_path):
    x, y = _centred_batch(200, seed=0)
    data = _write_crops(tmp_path / "crops", x, y)
    kw = dict(weights=None, task="celltype", data=data, model_size="test", patch_size=8,
              img_size=32, seed=0, progress=False)
    centre = run_probes(**kw)  # the default readout
    mean = run_probes(**kw, pool="mean")
    assert centre["settings"]["pool"] == "centre" and mean["settings"]["pool"] == "mean"
    for probe in ("knn", "linear"):
        assert centre[probe]["accuracy"] >= 0.95, (probe, centre[probe]["accuracy"])
        assert centre[probe]["accuracy"] >= mean[probe]["accuracy"] + 0.1, \
            (probe, centre[probe]["accuracy"], mean[probe]["accuracy"])
    with pytest.raises(DamaUserError, match="unknown --pool 'max'"):
        run_probes(**kw, pool="max")


# --------------------------------------------------------------------------- the probes
def _clusters(n_per_class: int, num_classes: int = 3, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), n_per_class)
    centres = 10.0 * np.eye(num_classes, dim)
    x = centres[y] + rng.standard_normal((len(y), dim))
    perm = rng.permutation(len(y))
    return torch.tensor(x[perm], dtype=torch.float32), torch.tensor(y[perm])


@pytest.mark.parametrize("weighting", ["temperature", "majority"])
def test_probes_are_perfect_on_separable_features_and_chance_on_shuffled_labels(weighting):
    x, y = _clusters(200)
    tr, te = slice(0, 300), slice(300, 600)
    knn = knn_probe(x[tr], y[tr], x[te], y[te], num_classes=3, weighting=weighting)
    lin = linear_probe(x[tr], y[tr], x[te], y[te], num_classes=3, class_names=["a", "b", "c"])
    assert knn["accuracy"] == 1.0 and knn["balanced_accuracy"] == 1.0
    assert lin["accuracy"] == 1.0 and lin["per_class_recall"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert np.trace(lin["confusion"]) == 300

    g = torch.Generator().manual_seed(1)
    shuffled = y[torch.randperm(len(y), generator=g)]
    knn = knn_probe(x[tr], shuffled[tr], x[te], shuffled[te], num_classes=3, weighting=weighting)
    lin = linear_probe(x[tr], shuffled[tr], x[te], shuffled[te], num_classes=3)
    for m in (knn, lin):
        assert abs(m["accuracy"] - 1 / 3) < 0.1, m["accuracy"]
        assert abs(m["balanced_accuracy"] - 1 / 3) < 0.1, m["balanced_accuracy"]


def test_linear_probe_is_deterministic_and_balanced():
    x, y = _clusters(100, dim=8)
    x = x + 8.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))  # overlap
    a = linear_probe(x[:200], y[:200], x[200:], y[200:], num_classes=3)
    b = linear_probe(x[:200], y[:200], x[200:], y[200:], num_classes=3)
    assert a == b
    recalls = list(a["per_class_recall"].values())
    assert a["balanced_accuracy"] == pytest.approx(np.mean(recalls))


def test_probe_features_are_the_mae_encoder_output():
    """Loading through the classifier's loader gives exactly the pretraining encoder's
    latent (patch tokens after the final norm), and the pooled feature is their mean."""
    export = random_export_of_size("test", img_size=32, in_chans=3, patch_size=8, seed=3)
    encoder = build_probe_encoder(export, name="random", seed=3)
    cfg = mae_config("test", img_size=32, patch_size=8, in_chans=3)
    mae = MaskedAutoencoderViT(cfg)
    mae.load_state_dict(export["model"], strict=False)
    x = torch.rand(5, 3, 32, 32)
    pooled, patches = extract_features(encoder, x, batch_size=2)
    latent, _ = mae.forward_encoder(x, torch.arange(16)[None].expand(5, -1))
    assert patches.shape == (5, 16, 64) and pooled.shape == (5, 64)
    torch.testing.assert_close(patches, latent[:, 1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, patches.mean(1))
    # same seed, same weights; another seed, others
    again = random_export_of_size("test", img_size=32, in_chans=3, patch_size=8, seed=3)
    other = random_export(img_size=32, patch_size=8, in_chans=3, embed_dim=64, depth=2,
                          num_heads=2, seed=4)
    assert torch.equal(again["model"]["blocks.0.attn.qkv.weight"],
                       export["model"]["blocks.0.attn.qkv.weight"])
    assert not torch.equal(other["model"]["blocks.0.attn.qkv.weight"],
                           export["model"]["blocks.0.attn.qkv.weight"])


def test_export_pixel_statistics_standardise_the_input_and_carry_to_the_control():
    kw = dict(img_size=32, patch_size=8, in_chans=2, embed_dim=64, depth=2, num_heads=2, seed=0)
    plain = build_probe_encoder(random_export(**kw), name="random")
    stats = random_export(**kw, pixel_mean=[0.1, 0.2], pixel_std=[0.5, 0.25])
    standardised = build_probe_encoder(stats, name="random")
    assert standardised.info.pixel_mean == [0.1, 0.2]
    x = torch.rand(3, 2, 32, 32)
    mean = torch.tensor([0.1, 0.2]).view(1, 2, 1, 1)
    std = torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)
    torch.testing.assert_close(extract_features(standardised, x)[0],
                               extract_features(plain, (x - mean) / std)[0])
    control = random_export_like(dict(stats, method="dama"), seed=1)
    assert control["pixel_mean"] == [0.1, 0.2] and control["pixel_std"] == [0.5, 0.25]
    with pytest.raises(DamaUserError, match="pixel_mean/pixel_std need 2"):
        build_probe_encoder(dict(stats, pixel_std=[1.0]), name="bad.pth")


# ------------------------------------------------------------------------ dense targets
def _disk(size: int, centre: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] + 0.5  # pixel centres
    return (((yy - centre) ** 2 + (xx - centre) ** 2) < radius**2).astype(np.int32)


def test_dense_targets_of_a_disk_have_the_expected_counts():
    # A disk centred on the corner shared by the four middle 16-px patches of a 128 tile
    # (8 x 8 patches); per quadrant, patch (i, j) counted from the centre.
    # R = 24: (0,0) lies inside (farthest corner 22.6 px) -> interior; (0,1)/(1,0) are
    # 38 % covered and (1,1) holds one pixel -> boundary; the rest are > 24 px away.
    t = patch_targets(_disk(128, 64, 24), 16)
    assert t.shape == (8, 8)
    assert np.bincount(t.ravel(), minlength=3).tolist() == [48, 4, 12]
    assert sorted(zip(*np.nonzero(t == 1))) == [(3, 3), (3, 4), (4, 3), (4, 4)]
    # R = 40: (0,0), (0,1), (1,0), (1,1) are >= 89 % covered -> interior; (0,2)/(2,0)
    # 43 %, (1,2)/(2,1) 7 % -> boundary; 8 background patches per quadrant.
    t = patch_targets(_disk(128, 64, 40), 16)
    assert np.bincount(t.ravel(), minlength=3).tolist() == [32, 16, 16]
    # interior_min=1: only patches wholly inside a nucleus are interior
    t = patch_targets(_disk(128, 64, 40), 16, interior_min=1.0)
    assert np.bincount(t.ravel(), minlength=3).tolist() == [32, 12, 20]


def test_padding_is_ignored_and_remainders_dropped():
    labels = np.full((112, 112), IGNORE, np.int64)
    labels[:100, :100] = _disk(100, 50, 20)
    t = patch_targets(labels, 16)
    assert (t == IGNORE).sum() == 49 - 36  # rows/cols 6 touch the padding
    assert tile_origins(100, 90, 128) == [(0, 0)]
    assert tile_origins(300, 520, 128) == [(y, x) for y in (0, 128) for x in (0, 128, 256, 384)]


def _write_pairs(folder, sizes, seed=0):
    """Cellpose-style pairs: uint8 images with bright disks + their label images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        labels = np.zeros((h, w), np.int32)
        yy, xx = np.mgrid[:h, :w]
        for k in range(1, 6):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 12)
            labels[((yy - cy) ** 2 + (xx - cx) ** 2) < r * r] = k
        image = (20 + 180 * (labels > 0) + rng.integers(0, 30, (h, w))).astype(np.uint8)
        tifffile.imwrite(folder / f"img{i:02d}.tif", image)
        write_label_image(folder / f"img{i:02d}_masks.tif", labels)
    return folder


def test_split_by_image_never_shares_an_image(tmp_path):
    data = _write_pairs(tmp_path / "pairs", [(64, 64), (96, 64), (64, 128), (70, 70), (64, 64),
                                             (128, 128)])
    tiles = build_dense_tiles(data, img_size=32, patch_size=8)
    assert len(tiles.pairs) == 6 and tiles.targets.shape[1:] == (4, 4)
    assert len(tiles) == 4 + 6 + 8 + 4 + 4 + 16
    groups = tiles.patch_groups()
    assert len(groups) == tiles.targets.size
    for seed in range(5):
        train, test = group_split(groups, 0.5, seed)
        assert not set(groups[train]) & set(groups[test])
        assert sorted(np.concatenate([train, test])) == list(range(len(groups)))
        assert len(set(groups[test])) == 3
    res = run_probes(None, "dense", data, model_size="test", patch_size=8, img_size=32,
                     progress=False)
    split = res["split"]
    assert split["train_images"] + split["test_images"] == 6
    assert split["train_patches"] + split["test_patches"] == res["dataset"]["n_patches"]
    assert sum(res["dataset"]["class_counts"]) == res["dataset"]["n_patches"]


def test_splits_and_subsets_are_seeded_and_stratified():
    labels = np.repeat([0, 1, 2], [10, 6, 4])
    for train, test in stratified_folds(labels, 2, seed=1):
        assert np.bincount(labels[test]).tolist() == [5, 3, 2]
        assert not set(train) & set(test)
    sub = subsample(20, 6, seed=0, labels=labels)
    assert np.bincount(labels[sub]).tolist() == [2, 2, 2]
    assert subsample(20, 6, seed=0, labels=labels).tolist() == sub.tolist()
    assert subsample(5, None).tolist() == [0, 1, 2, 3, 4]


# -------------------------------------------------------------------------------- CLI
def test_cli_writes_metrics_json(tmp_path, capsys):
    data = _write_pairs(tmp_path / "pairs", [(64, 64)] * 4)
    out = tmp_path / "res" / "metrics.json"
    rc = main(["probe", "--random", "--model", "test", "--patch-size", "8", "--task", "dense",
               "--data", str(data), "--img-size", "32", "--seed", "1", "--out", str(out),
               "--quiet"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "linear: acc" in stdout
    res = json.loads(out.read_text())
    assert {"format", "task", "data", "encoder", "dataset", "split", "chance", "linear",
            "settings", "seconds"} <= set(res)
    assert res["format"] == "dama_det.probe.v1" and res["task"] == "dense"
    assert set(res["linear"]) >= {"accuracy", "balanced_accuracy", "per_class_recall",
                                  "confusion"}
    assert list(res["linear"]["per_class_recall"]) == ["background", "interior", "boundary"]
    assert res["encoder"]["source"] == "random" and res["encoder"]["seed"] == 1
    assert res["settings"]["seed"] == 1 and res["dataset"]["in_chans"] == 1

    x, y = _toy_batch(24, seed=5)
    crops = _write_crops(tmp_path / "crops", x, y)
    out = tmp_path / "ct.json"
    rc = main(["probe", "--random", "--model", "test", "--patch-size", "8", "--task",
               "celltype", "--data", str(crops), "--img-size", "32", "--max-images", "12",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert {"knn", "linear"} <= set(res) and res["dataset"]["class_counts"] == [6, 6]
    assert len(res["knn"]["folds"]) == 2


def test_channel_mismatch_is_a_user_error(tmp_path, capsys):
    data = _write_pairs(tmp_path / "pairs", [(64, 64)] * 2)
    kw = dict(img_size=32, patch_size=8, in_chans=2, embed_dim=64, depth=2, num_heads=2)
    save_encoder_export(tmp_path / "two.pth", random_export(**kw)["model"], **kw)
    rc = main(["probe", "--weights", str(tmp_path / "two.pth"), "--task", "dense",
               "--data", str(data), "--quiet"])
    assert rc == 2
    assert "pretrained on 2 channel(s) but the dense data has 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--random", "--task", "dense", "--data", "{tmp}/missing"], "no such data folder"),
    (["--weights", "{tmp}/nope.pth", "--task", "celltype", "--data", "{tmp}"], "nope.pth"),
    (["--random", "--with-random", "--task", "dense", "--data", "{tmp}"], "--with-random"),
    (["--random", "--task", "celltype", "--data", "{tmp}"], "no class sub-folders"),
])
def test_cli_bad_inputs_give_one_error_line_and_exit_2(tmp_path, capsys, argv, message):
    rc = main(["probe", *(a.format(tmp=tmp_path) for a in argv), "--quiet"])
    _, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err


def test_pretraining_probes_on_a_schedule_without_changing_training(tmp_path, capsys):
    """`dama-det pretrain --probe-every`: probe figures in log.jsonl for the scheduled
    epochs, and the training itself is exactly that of a run without probes."""
    from tests.helpers.pretrain_crops import small_args, write_crops

    crops = write_crops(tmp_path / "crops", 8)  # type0/ and type1/: a 2-class cell-type task
    base = ["--epochs", "3", "--method", "mae"]
    assert main(["pretrain", *small_args(crops, tmp_path / "plain", *base)]) == 0
    assert main(["pretrain", *small_args(crops, tmp_path / "probed", *base, "--probe-every", "2",
                                         "--probe-task", "celltype", "--probe-data",
                                         str(crops))]) == 0
    plain = [json.loads(line)
             for line in (tmp_path / "plain" / "log.jsonl").read_text().splitlines()]
    probed = [json.loads(line)
              for line in (tmp_path / "probed" / "log.jsonl").read_text().splitlines()]
    assert probed[0]["epoch"] == 0 and "loss" not in probed[0]  # the untrained encoder
    probed = probed[1:]
    assert [r["loss"] for r in plain] == [r["loss"] for r in probed]
    keys = [sorted(k for k in r if k.startswith("probe_")) for r in probed]
    assert keys[0] == [] and keys[1] == keys[2] and "probe_linear_balanced_accuracy" in keys[1]
    assert "probe_knn_accuracy" in keys[1]  # epoch 2 (every 2) and 3 (the last)
    assert all(0.0 <= probed[i][k] <= 1.0 for i in (1, 2) for k in keys[1])
    capsys.readouterr()
    assert main(["pretrain", *small_args(crops, tmp_path / "bad", "--probe-every", "1")]) == 2
    assert "--probe-data" in capsys.readouterr().err
