"""A folder of N-channel TIFF crops, read recursively, for self-supervised pretraining.

Every ``*.tif`` / ``*.tiff`` (including ``.ome.tif``) below the folder is a crop,
except cellpose-style label images (``*_masks.tif``). Headers are checked once up
front (readable, channel count, pixel type) so that a bad file stops the run with
one clear message before training starts. Intensities are scaled by the stored
dtype's maximum (the paper's ``uint8 / 255``, ``uint16 / 65535``) by default.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..data.normalize import SCALING_MODES, scale_intensities
from ..data.tiff_io import read_image, read_tiff_header
from ..errors import DamaUserError

TIFF_SUFFIXES = (".tif", ".tiff")


def find_crops(root: str | os.PathLike) -> list[Path]:
    """All TIFF crops below ``root`` (recursively, sorted), label images excluded.

    Raises:
        DamaUserError: ``root`` is not a folder or holds no TIFF file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DamaUserError(f"{root}: no such data folder")
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in TIFF_SUFFIXES and p.is_file()
        and not p.name.startswith(".") and not p.stem.lower().endswith("_masks")
    )
    if not files:
        raise DamaUserError(
            f"{root}: no TIFF crops (*.tif, *.tiff) found in the folder or below it")
    return files


def inspect_crop(path: Path) -> tuple[int, np.dtype]:
    """Channel count and stored pixel type of a TIFF, from its header only.

    Raises:
        DamaUserError: unreadable/corrupt file or unsupported layout / pixel type.
    """
    header = read_tiff_header(path)
    return header.channels, header.dtype


class CropFolderDataset(Dataset):
    """TIFF crops as ``(C, S, S)`` float tensors in about [0, 1], augmented.

    Args:
        root: folder searched recursively.
        in_chans: the channel count every crop must have.
        transform: applied to each ``(C, H, W)`` float tensor (e.g.
            :func:`augment.pretrain_transform`); None keeps the crop as is.
        scaling: ``dtype_max`` (default), ``percentile`` or ``none``.
        show_progress: tqdm bar while checking headers.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        in_chans: int,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        scaling: str = "dtype_max",
        show_progress: bool = True,
    ):
        if scaling not in SCALING_MODES:
            raise DamaUserError(
                f"--scaling must be one of {', '.join(SCALING_MODES)}, got {scaling!r}")
        self.root = Path(root)
        self.files = find_crops(self.root)
        self.in_chans = in_chans
        self.transform = transform
        self.scaling = scaling
        self.dtypes: list[np.dtype] = []
        bar = tqdm(self.files, desc="checking crops", unit="file",
                   disable=not show_progress or len(self.files) < 500, leave=False)
        for path in bar:
            chans, dtype = inspect_crop(path)
            if chans != in_chans:
                raise DamaUserError(
                    f"{path}: crop has {chans} channel(s) but the model expects {in_chans} "
                    "(--in-chans)"
                )
            self.dtypes.append(dtype)
        self.channel_names = read_image(self.files[0], expected_channels=in_chans)[1]

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> torch.Tensor:
        """The scaled crop ``index`` without augmentation, ``(C, H, W)`` float32."""
        image, _ = read_image(self.files[index], expected_channels=self.in_chans)
        return torch.from_numpy(scale_intensities(image, self.scaling, self.dtypes[index]))

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.load(index)
        if self.transform is not None:
            image = self.transform(image)
        return image.contiguous().float()
