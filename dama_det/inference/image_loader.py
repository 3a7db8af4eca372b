"""Read (and, where it needs the whole image, scale) the images to predict ahead of the
model, in DataLoader worker processes.

``dama-det predict`` spends its time in the model; reading and decoding the next TIFF,
and the whole-image percentile statistics of ``INPUT.INTENSITY_SCALING: percentile``,
run meanwhile in ``workers`` background processes (0: in the main process, one image
after the other, as before). Per-pixel scalings (``dtype_max``, ``none``) stay window by
window in the tiler, so no full-size float copy of a large image is made; the results
are the same in every case.

A user error in a worker (an unreadable file, another channel count) comes back as the
same one-line :class:`DamaUserError` as without workers, raised when that image's turn
comes, not as a worker traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..data.normalize import scale_intensities
from ..data.tiff_io import read_tiff
from ..errors import DamaUserError
from .inputs import InputImage

# Scalings computed from the whole image (statistics); the others map pixel by pixel.
WHOLE_IMAGE_SCALINGS = ("percentile",)


@dataclass
class LoadedImage:
    """One input image, read.

    Attributes:
        item: the input it was read from.
        image: raw intensities ``(C, H, W)`` as stored (for the overlay and for
            per-window scaling).
        source_dtype: the pixel type stored in the file (for ``dtype_max`` scaling).
        scaled: float32 ``(C, H, W)`` for whole-image scalings, else None (the
            windows are scaled one by one).
    """

    item: InputImage
    image: np.ndarray
    source_dtype: np.dtype
    scaled: np.ndarray | None = None


@dataclass
class _ReadFailure:
    """A user error met in a worker, carried back to be raised in the main process."""

    message: str


class PredictImageDataset:
    """The input images, read and (whole-image scalings only) scaled, by index (a
    map-style dataset for ``torch.utils.data.DataLoader``; torch is imported on use).

    Args:
        inputs: images from :func:`dama_det.inference.inputs.collect_inputs`.
        num_channels: channels every image must have.
        intensity_scaling: ``INPUT.INTENSITY_SCALING`` of the training config.
        percentile_range: ``INPUT.PERCENTILE_RANGE``.
    """

    def __init__(self, inputs: Sequence[InputImage], num_channels: int,
                 intensity_scaling: str = "dtype_max",
                 percentile_range: Sequence[float] = (1.0, 99.8)):
        self.inputs = list(inputs)
        self.num_channels = num_channels
        self.mode = str(intensity_scaling).lower()
        self.percentile_range = tuple(percentile_range)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> LoadedImage | _ReadFailure:
        item = self.inputs[index]
        try:
            tiff = read_tiff(item.path, expected_channels=self.num_channels)
            scaled = None
            if self.mode in WHOLE_IMAGE_SCALINGS:
                scaled = scale_intensities(tiff.image, self.mode, tiff.dtype,
                                           self.percentile_range)
            return LoadedImage(item, tiff.image, np.dtype(tiff.dtype), scaled)
        except DamaUserError as exc:
            return _ReadFailure(str(exc))


def _keep_sample(sample):
    return sample


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # the model's threads stay with the main process


def load_images(dataset: PredictImageDataset, workers: int = 1) -> Iterator[LoadedImage]:
    """Iterate over ``dataset`` in order, ``workers`` images read ahead of the consumer.

    Args:
        dataset: the images.
        workers: background reader processes (0: read in the main process when asked).

    Yields:
        The images, in input order.

    Raises:
        DamaUserError: an image could not be read (the message of the reader).
    """
    from torch.utils.data import DataLoader

    if workers < 0:
        raise DamaUserError(f"--workers must be >= 0, got {workers}")
    workers = min(workers, len(dataset))
    loader = DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers,
        collate_fn=_keep_sample, worker_init_fn=_worker_init if workers else None,
        prefetch_factor=1 if workers else None,  # one image ahead per worker: bounded memory
    )
    for sample in loader:
        if isinstance(sample, _ReadFailure):
            raise DamaUserError(sample.message)
        yield sample
