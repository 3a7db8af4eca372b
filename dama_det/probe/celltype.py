"""The ``celltype`` task: crop-level cell type from a folder of labelled crops.

The folder is the one ``dama-det data synth`` writes as ``crops/`` (or
:func:`dama_det.data.synth.generate_crops`): ``labels.csv`` with the columns
``file`` (relative to the folder) and ``cell_type``. A folder without ``labels.csv``
is read as one sub-folder of crops per class (the ``dama-det classify`` layout).
Classes are the sorted cell-type names. Crops are scaled like pretraining's
(:func:`dama_det.data.normalize.scale_intensities`, default by the pixel type's
maximum) and resized (bilinear, antialiased) to the probe's image size if needed.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import DamaUserError

LABELS_CSV = "labels.csv"
FILE_COLUMN = "file"
LABEL_COLUMNS = ("cell_type", "label", "class")


@dataclass
class LabelledCrops:
    """The crops of a ``celltype`` folder.

    Attributes:
        root: the folder.
        paths: one file per crop.
        labels: ``(N,)`` int64 class index per crop.
        class_names: sorted class names (index = class).
        in_chans: channel count shared by every crop.
    """

    root: Path
    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    in_chans: int

    def subset(self, indices: Sequence[int]) -> "LabelledCrops":
        """The crops at ``indices`` (class names kept)."""
        idx = np.asarray(indices, dtype=np.int64)
        return LabelledCrops(self.root, [self.paths[i] for i in idx], self.labels[idx],
                             list(self.class_names), self.in_chans)


def _read_labels_csv(root: Path) -> tuple[list[Path], list[str]]:
    path = root / LABELS_CSV
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DamaUserError(f"{path}: cannot read ({exc})") from None
    label_col = next((c for c in LABEL_COLUMNS if c in header), None)
    if not rows or FILE_COLUMN not in header or label_col is None:
        raise DamaUserError(
            f"{path}: expected a header with columns {FILE_COLUMN!r} and one of "
            f"{', '.join(repr(c) for c in LABEL_COLUMNS)} and at least one row"
        )
    paths, names = [], []
    for line, row in enumerate(rows, start=2):
        rel, name = (row.get(FILE_COLUMN) or "").strip(), (row.get(label_col) or "").strip()
        if not rel or not name:
            raise DamaUserError(f"{path}, line {line}: empty {FILE_COLUMN!r} or {label_col!r}")
        file = root / rel
        if not file.is_file():
            raise DamaUserError(f"{path}, line {line}: {file} does not exist")
        paths.append(file)
        names.append(name)
    return paths, names


def scan_labelled_crops(root: str | os.PathLike) -> LabelledCrops:
    """Index a ``celltype`` folder (``labels.csv``, else class sub-folders).

    Headers are checked up front (readable, same channel count everywhere).

    Raises:
        DamaUserError: missing folder, bad csv, missing files, fewer than two
            classes, or inconsistent channel counts.
    """
    from ..data.tiff_io import read_tiff_header

    root = Path(root)
    if not root.is_dir():
        raise DamaUserError(f"{root}: no such data folder")
    if (root / LABELS_CSV).is_file():
        paths, names = _read_labels_csv(root)
        class_names = sorted(set(names))
        if len(class_names) < 2:
            raise DamaUserError(f"{root / LABELS_CSV}: only one cell type "
                                f"({class_names[0]}); the probe needs at least two")
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.asarray([index[n] for n in names], dtype=np.int64)
        chans = None
        for p in paths:
            c = read_tiff_header(p).channels
            if chans is not None and c != chans:
                raise DamaUserError(f"{p}: crop has {c} channel(s) but {paths[0]} has {chans}")
            chans = c
        return LabelledCrops(root, paths, labels, class_names, int(chans))
    from ..classification.dataset import scan_class_folders

    try:
        idx = scan_class_folders(root)
    except DamaUserError as exc:
        raise DamaUserError(f"{exc} (or give a folder with {LABELS_CSV}: file, cell_type, "
                            "as `dama-det data synth` writes)") from None
    return LabelledCrops(root, list(idx.paths), idx.labels.astype(np.int64),
                         list(idx.class_names), int(idx.in_chans))


def load_crop(path: Path, in_chans: int, img_size: int, scaling: str = "dtype_max") -> torch.Tensor:
    """One crop as ``(C, img_size, img_size)`` float32, scaled and resized.

    Raises:
        DamaUserError: unreadable file or another channel count.
    """
    from ..data.normalize import read_scaled_image

    image = torch.from_numpy(np.ascontiguousarray(
        read_scaled_image(path, scaling, expected_channels=in_chans)))
    if image.shape[-2:] != (img_size, img_size):
        image = F.interpolate(image[None], size=(img_size, img_size), mode="bilinear",
                              align_corners=False, antialias=True)[0]
    return image


class CropImages(Dataset):
    """Lazily read crops: item ``i`` is ``(C, img_size, img_size)`` float32.

    Args:
        crops: the indexed crops.
        img_size: the side the encoder takes.
        scaling: ``"dtype_max"``, ``"percentile"`` or ``"none"``.
    """

    def __init__(self, crops: LabelledCrops, img_size: int, scaling: str = "dtype_max"):
        self.crops = crops
        self.img_size = int(img_size)
        self.scaling = scaling

    def __len__(self) -> int:
        return len(self.crops.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return load_crop(self.crops.paths[i], self.crops.in_chans, self.img_size, self.scaling)
