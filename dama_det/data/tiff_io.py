"""Multi-channel TIFF / OME-TIFF reading and writing.

Images are returned as float32 arrays in channel-first layout ``(C, H, W)`` with the
raw intensity values (no scaling), plus channel names taken from OME metadata when
present. Layouts accepted on reading: 2-D grey ``(H, W)``, ``CYX`` and ``YXC``
(the paper's crops are H x W x 7). Use :func:`dama_det.data.normalize` functions to
scale intensities. :func:`read_tiff_header` gives the channel count, size, dtype and
axes by the same rules without reading pixels (for checking thousands of crops).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import tifffile

from ..errors import DamaUserError
from ..utils.io import atomic_output

# Largest channel count we treat as "channels" when the axis order is ambiguous.
MAX_CHANNELS = 64


@dataclass(frozen=True)
class TiffImage:
    """An image read by :func:`read_tiff`.

    Attributes:
        image: float32 ``(C, H, W)`` with the raw (unscaled) intensities.
        channel_names: one name per channel (OME metadata, else ``ch0``, ``ch1``, ...).
        dtype: the pixel type stored in the file (e.g. ``uint16``), needed to scale
            intensities by the dtype maximum.
        axes: the axis order found in the file (tifffile's notation, e.g. ``"CYX"``).
    """

    image: np.ndarray
    channel_names: list[str]
    dtype: np.dtype
    axes: str


def _ome_channel_names(tif: tifffile.TiffFile) -> list[str] | None:
    """Channel names of the first OME ``Image`` (None without OME metadata)."""
    xml = tif.ome_metadata
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    image = next((el for el in root if el.tag.rsplit("}", 1)[-1] == "Image"), None)
    if image is None:
        return None
    names = [
        el.get("Name", "")
        for el in image.iter()
        if el.tag.rsplit("}", 1)[-1] == "Channel"
    ]
    if not any(names):
        return None
    return [name or f"ch{i}" for i, name in enumerate(names)]


def _drop_unit_axes(
    shape: Sequence[int], axes: str | None, max_ndim: int
) -> tuple[tuple[int, ...], str | None]:
    """Drop the length-1 axes of a shape with more than ``max_ndim`` axes (e.g. T and Z
    of a TCZYX OME image), keeping at least the last two (a 1 x 1 image stays 2-D).

    Returns:
        ``(shape, axes)``; ``axes`` kept in step (None if it did not match ``shape``).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) <= max_ndim:
        return shape, axes
    keep = [i for i, n in enumerate(shape) if n != 1]
    if len(keep) < 2:
        keep = [len(shape) - 2, len(shape) - 1]
    axes = "".join(axes[i] for i in keep) if axes and len(axes) == len(shape) else None
    return tuple(shape[i] for i in keep), axes


def _chw_layout(
    shape: Sequence[int], axes: str | None, path: Path
) -> tuple[tuple[int, ...], int | None]:
    """Where the channels of an array of ``shape`` lie, by the rules of :func:`read_tiff`.

    Length-1 axes of a > 3-D array are dropped first (e.g. T and Z of a TCZYX OME
    image, keeping ``axes`` in step). In a 3-D array the channel axis is the one the
    file's axes name ``C`` (or ``S``, RGB samples), else the last axis when it is the
    smallest (YXC, at most :data:`MAX_CHANNELS`), else the first (CYX).

    Args:
        shape: the stored array shape.
        axes: the stored axis order (tifffile's notation, e.g. ``"TCZYX"``), if known.
        path: shown in error messages.

    Returns:
        ``(squeezed_shape, channel_axis)``: the 2-D or 3-D shape after dropping
        length-1 axes, and the index of its channel axis (None for a 2-D image).

    Raises:
        DamaUserError: not a 2-D or 3-D image after squeezing.
    """
    shape, axes = _drop_unit_axes(shape, axes, 3)
    if len(shape) == 2:
        return shape, None
    if len(shape) != 3:
        raise DamaUserError(f"{path}: expected a 2-D or 3-D image, got shape {shape}")
    if axes:
        axes = axes.upper().replace("S", "C")
        # Trust the file's axes only when they name a channel axis explicitly.
        if len(axes) == 3 and set(axes) == {"C", "Y", "X"}:
            return shape, axes.index("C")
    # Ambiguous: the smallest axis is the channel axis (CYX or YXC).
    if shape[-1] <= MAX_CHANNELS and shape[-1] < min(shape[0], shape[1]):
        return shape, 2
    return shape, 0


def _to_chw(arr: np.ndarray, axes: str | None, path: Path) -> np.ndarray:
    """Bring a 2-D or 3-D array (or one with extra length-1 axes) into (C, H, W)."""
    shape, channel_axis = _chw_layout(arr.shape, axes, path)
    if shape != arr.shape:
        arr = arr.reshape(shape)
    if channel_axis is None:
        return arr[None]
    if channel_axis == 0:
        return arr
    return np.moveaxis(arr, channel_axis, 0)


def _check_pixel_type(dtype: np.dtype, path: Path) -> None:
    if not (np.issubdtype(dtype, np.bool_) or np.issubdtype(dtype, np.integer)
            or np.issubdtype(dtype, np.floating)):
        raise DamaUserError(f"{path}: unsupported pixel type {dtype}")


@dataclass(frozen=True)
class TiffHeader:
    """What :func:`read_tiff_header` learns from a TIFF without reading its pixels.

    Attributes:
        channels: channel count ``C`` of the ``(C, H, W)`` image :func:`read_tiff`
            returns.
        height: image height ``H``.
        width: image width ``W``.
        dtype: the pixel type stored in the file (e.g. ``uint16``).
        axes: the axis order found in the file (tifffile's notation, e.g. ``"CYX"``;
            ``""`` if unknown), as :attr:`TiffImage.axes`.
    """

    channels: int
    height: int
    width: int
    dtype: np.dtype
    axes: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``: the shape of ``read_tiff(path).image``."""
        return (self.channels, self.height, self.width)


# What tifffile logs (rather than raises) when a file is damaged: the page chain or a
# tag pointing past the end of a truncated file, pages missing from a series its
# metadata declares. tifffile then reads what is left, e.g. only the first page of a
# truncated multi-page OME-TIFF, so these records make the file an error.
_DAMAGE = re.compile(r"offset|corrupt|missing|incomplet|truncat|failed to read|expected \d+ ",
                     re.IGNORECASE)


@contextlib.contextmanager
def _tifffile_records() -> Iterator[list[logging.LogRecord]]:
    """Collect (instead of printing) what tifffile logs inside the block."""
    log = logging.getLogger("tifffile")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    propagate, log.propagate = log.propagate, False
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def _read_first_series(path: Path, read):
    """Open ``path`` as TIFF and return ``read(tif, first_series)``.

    Raises:
        DamaUserError: missing file, no image in it, anything tifffile fails on, or a
            damaged file tifffile would read in part (a truncated multi-page file whose
            series comes out shorter than its metadata declares), as one line naming
            the file.
    """
    if not path.is_file():
        raise DamaUserError(f"{path}: no such file")
    try:
        with _tifffile_records() as records, tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise DamaUserError(f"{path}: cannot read as TIFF (the file holds no image)")
            result = read(tif, tif.series[0])
    except DamaUserError:
        raise
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise DamaUserError(f"{path}: cannot read as TIFF ({type(exc).__name__}: {exc})") from None
    damage = [r.getMessage() for r in records
              if r.levelno >= logging.ERROR or _DAMAGE.search(r.getMessage())]
    if damage:
        detail = re.sub(r"<[^<>]*>\s*", "", damage[0])  # without tifffile's object reprs
        raise DamaUserError(f"{path}: corrupt or truncated TIFF ({detail})")
    for record in records:  # anything else tifffile noted: pass it on
        logging.getLogger("tifffile").handle(record)
    return result


def _check_channel_count(path: Path, channels: int, expected: int | None,
                         shape: Sequence[int], axes: str | None) -> None:
    """Raise unless an image of ``channels`` channels is what the caller ``expected``."""
    if expected is not None and channels != expected:
        raise DamaUserError(
            f"{path}: image has {channels} channel(s) but {expected} are expected "
            f"(shape {tuple(shape)}, axes {axes or '?'})"
        )


def read_tiff_header(path: str | os.PathLike, expected_channels: int | None = None) -> TiffHeader:
    """Channel count, size, pixel type and axes of a TIFF / OME-TIFF, from its header.

    No pixel data is read (fast on thousands of crops); the layout rules (squeezed
    length-1 axes, channel axis from the file's axes, else the smallest axis) are the
    ones of :func:`read_tiff`, so ``header.shape == read_tiff(path).image.shape``.

    Args:
        path: the file.
        expected_channels: if given, the channel count the caller needs; a mismatch
            raises :class:`DamaUserError` (the message of :func:`read_tiff`).

    Returns:
        A :class:`TiffHeader`.

    Raises:
        DamaUserError: missing/unreadable/corrupt file, no image in it, an empty image,
            an unsupported pixel type, a layout other than 2-D / 3-D or the wrong
            channel count.
    """
    path = Path(path)
    shape, axes, dtype = _read_first_series(
        path, lambda tif, series: (tuple(series.shape), series.axes, np.dtype(series.dtype)))
    if not shape or 0 in shape:
        raise DamaUserError(f"{path}: image is empty (shape {shape})")
    _check_pixel_type(dtype, path)
    squeezed, channel_axis = _chw_layout(shape, axes, path)
    if channel_axis is None:
        channels, (height, width) = 1, squeezed
    else:
        channels = squeezed[channel_axis]
        height, width = (n for i, n in enumerate(squeezed) if i != channel_axis)
    _check_channel_count(path, int(channels), expected_channels, shape, axes)
    return TiffHeader(int(channels), int(height), int(width), dtype, axes or "")


def read_tiff(path: str | os.PathLike, expected_channels: int | None = None) -> TiffImage:
    """Read a (multi-channel) TIFF or OME-TIFF image with its metadata.

    Layouts: 2-D grey ``(H, W)``, ``CYX`` and ``YXC`` (also OME ``TCZYX`` with
    singleton T/Z). The channel axis is taken from the file's axes when it names one
    (OME, ImageJ, RGB samples), else it is the smallest axis.

    Args:
        path: the file.
        expected_channels: if given, the channel count the caller needs (e.g. the
            config's ``len(PIXEL_MEAN)``); a mismatch raises :class:`DamaUserError`.

    Returns:
        A :class:`TiffImage` (float32 ``(C, H, W)`` raw intensities, channel names,
        stored dtype, axes).

    Raises:
        DamaUserError: missing/unreadable/corrupt file, unsupported pixel type, wrong
            channel count, NaN/Inf values, empty image.
    """
    path = Path(path)
    arr, axes, names = _read_first_series(
        path, lambda tif, series: (series.asarray(), series.axes, _ome_channel_names(tif)))
    if arr.size == 0:
        raise DamaUserError(f"{path}: image is empty (shape {arr.shape})")
    source_dtype = arr.dtype
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    _check_pixel_type(arr.dtype, path)
    chw = _to_chw(arr, axes, path).astype(np.float32, copy=False)
    if chw.shape[1] == 0 or chw.shape[2] == 0:
        raise DamaUserError(f"{path}: image is empty (shape {arr.shape})")
    if not np.isfinite(chw).all():
        raise DamaUserError(f"{path}: image contains NaN or Inf values")
    c = chw.shape[0]
    _check_channel_count(path, c, expected_channels, arr.shape, axes)
    if not names or len(names) != c:
        names = [f"ch{i}" for i in range(c)]
    return TiffImage(np.ascontiguousarray(chw), names, np.dtype(source_dtype), axes or "")


def read_image(
    path: str | os.PathLike, expected_channels: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read a (multi-channel) TIFF or OME-TIFF image.

    Args:
        path: the file.
        expected_channels: if given, the channel count the caller needs (e.g. the
            config's ``len(PIXEL_MEAN)``); a mismatch raises :class:`DamaUserError`.

    Returns:
        ``(image, channel_names)``: image float32 ``(C, H, W)`` with raw intensities;
        names from OME metadata, else ``["ch0", "ch1", ...]``. Use :func:`read_tiff`
        to also get the stored dtype (for scaling by the dtype maximum).

    Raises:
        DamaUserError: unreadable/corrupt file, wrong channel count, NaN/Inf values,
            empty image.
    """
    result = read_tiff(path, expected_channels)
    return result.image, result.channel_names


def _atomic_tiff_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    with atomic_output(path) as tmp:
        write(tmp)


def write_ome_tiff(
    path: str | os.PathLike,
    image: np.ndarray,
    channel_names: Sequence[str] | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write a ``(C, H, W)`` (or ``(H, W)``) image as OME-TIFF with channel names.

    The file is written to a temporary name and renamed, so it is never half-written.

    Args:
        path: output file (``.ome.tif`` recommended).
        image: array ``(C, H, W)`` or ``(H, W)``; dtype is kept (uint8/uint16/float32).
        channel_names: one name per channel.
        compression: tifffile compression ("zlib", None, ...).

    Returns:
        The written path.
    """
    path = Path(path)
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise DamaUserError(f"{path}: cannot write image of shape {img.shape}; expected (C, H, W)")
    metadata: dict = {"axes": "CYX"}
    if channel_names is not None:
        if len(channel_names) != img.shape[0]:
            raise DamaUserError(
                f"{path}: {len(channel_names)} channel names for {img.shape[0]} channels"
            )
        metadata["Channel"] = {"Name": list(channel_names)}
    _atomic_tiff_write(
        path,
        lambda tmp: tifffile.imwrite(tmp, img, ome=True, metadata=metadata,
                                     compression=compression, photometric="minisblack"),
    )
    return path


def read_label_image(path: str | os.PathLike) -> np.ndarray:
    """Read an instance label image (0 = background, 1..N = instances).

    Returns:
        int32 array ``(H, W)``.
    """
    path = Path(path)
    arr = _read_first_series(path, lambda tif, series: series.asarray())
    if arr.size == 0:
        raise DamaUserError(f"{path}: label image is empty (shape {arr.shape})")
    arr = arr.reshape(_drop_unit_axes(arr.shape, None, 2)[0])
    if arr.ndim != 2:
        raise DamaUserError(f"{path}: a label image must be 2-D, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise DamaUserError(
                f"{path}: label image must hold integers (0 = background, 1..N instances), "
                f"got {arr.dtype}"
            )
    if arr.min() < 0:
        raise DamaUserError(f"{path}: label image has negative labels")
    if int(arr.max()) > np.iinfo(np.int32).max:
        raise DamaUserError(f"{path}: label {int(arr.max())} does not fit in int32")
    return arr.astype(np.int32)


def write_label_image(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write an instance label image as uint16 (uint32 if > 65535 labels) TIFF, atomically."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise DamaUserError(f"{path}: a label image must be 2-D, got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise DamaUserError(f"{path}: label image has negative labels")
    dtype = np.uint16 if labels.max(initial=0) < 65536 else np.uint32
    data = labels.astype(dtype)
    _atomic_tiff_write(path, lambda tmp: tifffile.imwrite(tmp, data, compression="zlib"))
    return path
