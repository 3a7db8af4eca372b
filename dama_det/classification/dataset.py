"""Labelled crops for classification: a folder per class of N-channel TIFF images.

Layout (the synthetic generator's ``crops/`` folder has it)::

    DATA/<class_name>/**/*.tif      (or .tiff / .ome.tif; C x H x W or H x W x C)

Class names are the sub-folder names, sorted. Every image must have the same channel
count; sizes may differ (crops are resized to the model's input size). Intensities
are scaled by the pixel type's maximum (uint8 / 255, uint16 / 65535; floats as they
are), the paper's convention; per-channel percentile normalisation is the
alternative (:mod:`dama_det.data.normalize`). ``dama-det classify`` then standardises
each channel with the training fold's mean and std (``--pixel-stats data``, the
default, as detection and pretraining do).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.normalize import SCALING_MODES, scale_intensities
from ..data.tiff_io import read_image, read_tiff, read_tiff_header
from ..errors import DamaUserError

TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class CropIndex:
    """The samples of a folder-per-class dataset.

    Attributes:
        root: the data folder.
        paths: one file per sample, sorted by class then path.
        labels: class index per sample, shape ``(N,)``.
        class_names: sorted sub-folder names.
        in_chans: channel count shared by every image.
        channel_names: names from the first image's OME metadata (``ch0..`` if none).
        sizes: ``(H, W)`` per sample.
    """

    root: Path
    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    in_chans: int
    channel_names: list[str]
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def sample_ids(self) -> list[str]:
        """Paths relative to ``root`` in POSIX form (stable fold-file identifiers)."""
        return [p.relative_to(self.root).as_posix() for p in self.paths]

    def class_counts(self) -> list[int]:
        """Number of samples per class."""
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()

    def common_size(self) -> int | None:
        """The side length when every crop is the same square size, else None."""
        sizes = set(self.sizes)
        if len(sizes) == 1:
            h, w = next(iter(sizes))
            if h == w:
                return h
        return None


def _is_tiff(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TIFF_SUFFIXES and not path.name.startswith(".")


def probe_tiff(path: Path) -> tuple[int, tuple[int, int], np.dtype]:
    """Channel count, ``(H, W)`` and pixel type of a TIFF, from its header only.

    The axis interpretation is the one of :func:`dama_det.data.tiff_io.read_image`
    (:func:`dama_det.data.tiff_io.read_tiff_header`).

    Raises:
        DamaUserError: unreadable/corrupt file, empty image, unsupported pixel type or
            layout.
    """
    header = read_tiff_header(path)
    return header.channels, (header.height, header.width), header.dtype


def scan_class_folders(root: str | os.PathLike, expected_channels: int | None = None) -> CropIndex:
    """Index a folder-per-class dataset and validate it (headers only, fast).

    Args:
        root: folder holding one sub-folder of TIFF crops per class.
        expected_channels: channel count the caller needs, if fixed.

    Returns:
        The :class:`CropIndex`.

    Raises:
        DamaUserError: missing folder, fewer than two classes, a class without
            images, unreadable files, or inconsistent / unexpected channel counts.
    """
    root = Path(root)
    if not root.is_dir():
        raise DamaUserError(f"{root}: no such data folder")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        loose = [p for p in root.iterdir() if _is_tiff(p)]
        hint = (f" ({len(loose)} TIFF file(s) lie directly in it; move them into one "
                "sub-folder per class)") if loose else ""
        raise DamaUserError(f"{root}: no class sub-folders (expected {root}/<class>/*.tif){hint}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, d in enumerate(class_dirs):
        files = sorted(p for p in d.rglob("*") if _is_tiff(p))
        if not files:
            raise DamaUserError(f"{d}: class folder holds no TIFF images (.tif/.tiff)")
        paths += files
        labels += [label] * len(files)
    if len(class_dirs) < 2:
        raise DamaUserError(
            f"{root}: only one class ({class_dirs[0].name}); classification needs at least "
            "two class sub-folders"
        )
    first_chans = None
    sizes = []
    for p in paths:
        chans, size, _ = probe_tiff(p)  # also rejects unsupported pixel types
        want = expected_channels if expected_channels is not None else first_chans
        if want is not None and chans != want:
            ref = (f"expected {expected_channels}" if expected_channels is not None
                   else f"{paths[0]} has {first_chans}")
            raise DamaUserError(f"{p}: image has {chans} channel(s) but {ref}; every crop "
                                "needs the same channels")
        first_chans = chans if first_chans is None else first_chans
        sizes.append(size)
    _, channel_names = read_image(paths[0], expected_channels=first_chans)
    return CropIndex(root=root, paths=paths, labels=np.asarray(labels, dtype=np.int64),
                     class_names=[d.name for d in class_dirs], in_chans=int(first_chans),
                     channel_names=channel_names, sizes=sizes)


class CropDataset(Dataset):
    """Reads crops lazily; returns ``(image (C, S, S) float32, label)``: scaled to about
    [0, 1], then standardised per channel when ``mean`` / ``std`` are given.

    Args:
        index: the dataset index.
        indices: which samples of ``index`` this dataset holds (a fold's split).
        transform: tensor transform applied to each ``(C, H, W)`` image.
        scaling: intensity scaling, ``"dtype_max"`` (the paper), ``"percentile"`` or
            ``"none"`` (see :func:`dama_det.data.normalize.scale_intensities`).
        percentile_range: ``(low, high)`` percentiles for ``"percentile"``.
        mean, std: per-channel statistics of the scaled images (``C`` values each);
            ``(x - mean) / std`` is applied before ``transform``. None: no standardisation.
    """

    def __init__(self, index: CropIndex, indices: Sequence[int],
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 scaling: str = "dtype_max",
                 percentile_range: tuple[float, float] = (1.0, 99.8),
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if scaling not in SCALING_MODES:
            raise DamaUserError(f"intensity scaling must be one of {', '.join(SCALING_MODES)}, "
                                f"got {scaling!r}")
        self.index = index
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.scaling = scaling
        self.percentile_range = tuple(percentile_range)
        self.mean = self.std = None
        if mean is not None and std is not None:
            self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
            self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
            if len(self.mean) != index.in_chans or len(self.std) != index.in_chans:
                raise DamaUserError(f"pixel statistics have {len(self.mean)} / {len(self.std)} "
                                    f"values for {index.in_chans} channel(s)")

    def scaled(self, j: int) -> np.ndarray:
        """Sample ``j`` of the *index* scaled to about [0, 1], ``(C, H, W)`` float32."""
        tif = read_tiff(self.index.paths[j], expected_channels=self.index.in_chans)
        scaled = scale_intensities(tif.image, self.scaling, tif.dtype, self.percentile_range)
        return np.ascontiguousarray(scaled, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def labels(self) -> np.ndarray:
        """Class index of each sample of this dataset, shape ``(len(self),)``."""
        return self.index.labels[self.indices]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        image = torch.from_numpy(self.scaled(j))
        if self.mean is not None:
            image = (image - self.mean) / self.std
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.index.labels[j])
