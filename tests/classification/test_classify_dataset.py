"""Folder-per-class crop datasets: indexing, validation errors, intensity scaling."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from dama_det.classification.dataset import CropDataset, scan_class_folders
from dama_det.data.tiff_io import write_ome_tiff
from dama_det.errors import DamaUserError
from tests.helpers.classification import make_class_crops


def test_scan_sorted_classes_and_labels(tmp_path):
    make_class_crops(tmp_path, n_per_class=3, size=32, classes=("b_cls", "a_cls", "c_cls"))
    index = scan_class_folders(tmp_path)
    assert index.class_names == ["a_cls", "b_cls", "c_cls"]
    assert index.class_counts() == [3, 3, 3]
    assert index.in_chans == 7 and index.common_size() == 32
    assert index.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(index.paths[i].parent.name == index.class_names[lab]
               for i, lab in enumerate(index.labels))
    assert index.sample_ids[0] == "a_cls/a_cls_000.ome.tif"


def test_dataset_scales_uint16_and_uint8_and_reads_yxc(tmp_path):
    a = np.full((3, 16, 16), 65535, np.uint16)
    write_ome_tiff(tmp_path / "x" / "a.ome.tif", a)
    # channels-last uint8 (the paper's H x W x C crops), without OME metadata
    (tmp_path / "y").mkdir()
    tifffile.imwrite(tmp_path / "y" / "b.tif", np.full((16, 16, 3), 51, np.uint8))
    index = scan_class_folders(tmp_path)
    ds = CropDataset(index, [0, 1])
    img0, lab0 = ds[0]
    img1, lab1 = ds[1]
    assert img0.shape == img1.shape == (3, 16, 16) and img0.dtype == torch.float32
    assert (lab0, lab1) == (0, 1)
    assert torch.allclose(img0, torch.ones_like(img0))
    assert torch.allclose(img1, torch.full_like(img1, 0.2))


def test_dataset_standardises_per_channel_before_the_transform(tmp_path):
    img = np.stack([np.full((8, 8), 65535), np.full((8, 8), 0)]).astype(np.uint16)
    write_ome_tiff(tmp_path / "x" / "a.ome.tif", img)
    write_ome_tiff(tmp_path / "y" / "b.ome.tif", img)
    index = scan_class_folders(tmp_path)
    seen = []
    ds = CropDataset(index, [0], transform=lambda t: seen.append(t.clone()) or t,
                     mean=[0.5, 0.1], std=[0.25, 0.2])
    out, _ = ds[0]
    assert torch.allclose(out[0], torch.full((8, 8), 2.0))  # (1 - 0.5) / 0.25
    assert torch.allclose(out[1], torch.full((8, 8), -0.5))  # (0 - 0.1) / 0.2
    assert torch.equal(seen[0], out)  # the transform saw the standardised image
    with pytest.raises(DamaUserError, match="3 / 3 values for 2 channel"):
        CropDataset(index, [0], mean=[0, 0, 0], std=[1, 1, 1])


@pytest.mark.parametrize("case, message", [
    ("missing", "no such data folder"),
    ("one_class", "only one class"),
    ("empty_class", "holds no TIFF images"),
    ("loose_files", "no class sub-folders"),
    ("channels", "channel(s) but"),
    ("corrupt", "cannot read as TIFF"),
])
def test_bad_datasets_raise_clear_errors(tmp_path, case, message):
    root = tmp_path / "data"
    if case != "missing":
        root.mkdir()
    if case == "one_class":
        make_class_crops(root, n_per_class=2, size=16, classes=("neuron",))
    elif case == "empty_class":
        make_class_crops(root, n_per_class=2, size=16, classes=("neuron", "glia"))
        (root / "zzz_empty").mkdir()
    elif case == "loose_files":
        write_ome_tiff(root / "a.ome.tif", np.zeros((7, 16, 16), np.uint16))
    elif case == "channels":
        make_class_crops(root, n_per_class=2, size=16, classes=("neuron", "glia"))
        write_ome_tiff(root / "neuron" / "odd.ome.tif", np.zeros((3, 16, 16), np.uint16))
    elif case == "corrupt":
        make_class_crops(root, n_per_class=2, size=16, classes=("neuron", "glia"))
        (root / "glia" / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(DamaUserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scan_class_folders(root)


def test_expected_channel_count_is_enforced(tmp_path):
    make_class_crops(tmp_path, n_per_class=2, size=16, chans=4, classes=("a", "b"))
    assert scan_class_folders(tmp_path, expected_channels=4).in_chans == 4
    with pytest.raises(DamaUserError, match="4 channel\\(s\\) but expected 7"):
        scan_class_folders(tmp_path, expected_channels=7)
