"""Fixtures for the predict tests: a random-weight tiny "trained" run folder and an image
folder. Import them by name into a test module to use them there."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dama_det.data.tiff_io import write_label_image, write_ome_tiff
from dama_det.inference.predictor import MaskRCNNTilePredictor
from tests.helpers.predict_fakes import tiny_cfg


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """``model_final.pth`` + ``config.yaml`` as training leaves them (random weights)."""
    out = tmp_path_factory.mktemp("train_out")
    torch.manual_seed(0)
    cfg = tiny_cfg()
    pred = MaskRCNNTilePredictor.from_config(cfg, None, device="cpu", amp="off")
    torch.save({"model": pred.model.state_dict(), "iteration": 20}, out / "model_final.pth")
    (out / "config.yaml").write_text(cfg.dump())
    return out


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    for name, (h, w) in {"slide_b": (150, 200), "slide_a": (128, 128)}.items():
        img = (rng.random((7, h, w)) * 20000).astype(np.uint16)
        img[:, 30:50, 40:60] = 60000
        write_ome_tiff(folder / f"{name}.ome.tif", img, [f"c{i}" for i in range(7)])
        gt = np.zeros((h, w), np.int32)
        gt[30:50, 40:60] = 1
        write_label_image(folder / f"{name}_masks.tif", gt)  # must be skipped as input
    return folder
