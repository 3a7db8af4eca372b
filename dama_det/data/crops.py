"""Cell-centred crops from large multiplexed images (the paper's "noisy" sets).

As in the DAMA supplement: large images are cut into tiles (default 1000 x 1000),
the nuclear channel is thresholded (Otsu), the foreground is eroded, cells are split
by a distance-transform watershed (scikit-image), and a ``crop_size`` square around
every cell centre (region centroid) is written as OME-TIFF with the source's channel
names and dtype.

Tiles overlap by a margin so cells on tile borders are found once: a centre is kept
only by the tile whose core contains it. Border policy: a crop that would reach past
the image border is **skipped** (no padding), so every crop holds only real pixels.

Output folder::

    OUT/<source stem>/crop_00000.ome.tif
    OUT/crops.csv          file (relative to OUT), source, y, x (centre in the source)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DamaUserError, print_warning

TIFF_SUFFIXES = (".tif", ".tiff")


def find_tiff_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (searched recursively) into a sorted list of TIFFs.

    Label images (``*_masks.tif``) inside folders are ignored.

    Raises:
        DamaUserError: an input does not exist, or no TIFF file was found.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
                and not f.name.lower().split(".")[0].endswith("_masks")
                and not f.name.startswith(".")
            )
            if not found:
                raise DamaUserError(f"{p}: folder holds no .tif/.tiff images")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DamaUserError(f"{p}: no such file or folder")
    if not files:
        raise DamaUserError("no input images given")
    return list(dict.fromkeys(files))


def peek_image(path: Path) -> tuple[int, int, int, np.dtype]:
    """Channel count, height, width and dtype of a TIFF without reading its pixels.

    The channel axis is found as :func:`dama_det.data.tiff_io.read_image` does it
    (:func:`dama_det.data.tiff_io.read_tiff_header`).

    Raises:
        DamaUserError: the file cannot be read as a 2-D/3-D TIFF image.
    """
    from .tiff_io import read_tiff_header

    header = read_tiff_header(path)
    return header.channels, header.height, header.width, header.dtype


def find_cell_centres(
    nuclear: np.ndarray,
    threshold: float,
    *,
    erosion_radius: int = 2,
    min_distance: int = 5,
    min_area: int = 12,
) -> np.ndarray:
    """Cell centres in one 2-D nuclear image by erosion + distance-transform watershed.

    Args:
        nuclear: ``(H, W)`` float image (nuclear channel or channel sum), smoothed.
        threshold: foreground threshold (e.g. Otsu of the whole image).
        erosion_radius: radius of the disk used to erode the foreground (0 = none).
        min_distance: minimum distance between two watershed markers (px).
        min_area: smallest region (after erosion) kept (px).

    Returns:
        ``(N, 2)`` float array of region centroids ``(row, col)``.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.measure import label, regionprops
    from skimage.morphology import disk
    from skimage.segmentation import watershed

    mask = nuclear > threshold
    if erosion_radius > 0:
        mask = ndi.binary_erosion(mask, structure=disk(erosion_radius))
    components = label(mask)
    sizes = np.bincount(components.ravel())
    small = sizes < min_area
    small[0] = False
    if small.any():
        mask &= ~small[components]
        components = label(mask)
    if not mask.any():
        return np.zeros((0, 2))
    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components,
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # components without a peak (flat plateaus) still get one marker
    missing = np.setdiff1d(np.unique(components[mask]), components[tuple(peaks.T)])
    if missing.size:
        for k, (y, x) in zip(missing, ndi.center_of_mass(mask, components, missing)):
            yy, xx = np.nonzero(components == k)
            j = np.argmin((yy - y) ** 2 + (xx - x) ** 2)
            markers[yy[j], xx[j]] = markers.max() + 1
    regions = watershed(-distance, markers, mask=mask)
    props = [r for r in regionprops(regions) if r.area >= min_area]
    return np.array([r.centroid for r in props], np.float64).reshape(-1, 2)


def _tile_starts(n: int, tile: int) -> list[int]:
    return list(range(0, max(n, 1), tile))


def _no_crop_reason(height: int, width: int, crop_size: int, threshold: float) -> str:
    """Why an ``height x width`` image gave no crop (for the warning / error line)."""
    if height < crop_size or width < crop_size:
        return f"the image ({height}x{width}) is smaller than the crop size {crop_size}"
    if not np.isfinite(threshold):
        return "the nuclear channel is uniform (no cells to find)"
    return (f"no cell centre found at least {crop_size // 2} px from the border (try another "
            "--nuclear-channel, a smaller --min-area or --crop-size)")


def extract_cell_crops(
    images: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    crop_size: int = 128,
    tile_size: int = 1000,
    nuclear_channel: int = 0,
    erosion_radius: int = 2,
    min_distance: int | None = None,
    min_area: int | None = None,
    max_crops: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Find cells in large multiplexed images and write a crop around each.

    Args:
        images: TIFF/OME-TIFF files or folders (searched recursively; ``*_masks.tif``
            label images are ignored). All must have the same channel count.
        out_dir: output folder (written atomically; an earlier crops folder, one
            with ``crops.csv``, is replaced).
        crop_size: crop height and width (px).
        tile_size: images are processed in tiles of this size (px).
        nuclear_channel: channel used to find nuclei; ``-1`` = sum of all channels.
        erosion_radius: disk radius of the erosion of the foreground mask.
        min_distance: minimum distance between cell centres (px); default
            ``max(3, crop_size // 24)``.
        min_area: smallest eroded nucleus area kept (px); default
            ``max(8, min_distance**2 // 2)``.
        max_crops: stop after this many crops in total.
        progress: show tqdm progress bars.

    Returns:
        Paths of the written crops (``(C, crop_size, crop_size)`` OME-TIFF, the
        source's dtype and channel names).

    Raises:
        DamaUserError: missing inputs, inconsistent channel counts (naming the file),
            a bad channel index or sizes, or no crop at all (naming an image and why;
            an image without crops among others gives a warning line).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from tqdm.auto import tqdm

    from .synth.io import staged_output_dir, write_csv
    from .tiff_io import read_image, write_ome_tiff

    for name, value, low in (("crop_size", crop_size, 8), ("tile_size", tile_size, 16)):
        if int(value) != value or value < low:
            raise DamaUserError(f"{name} must be an integer >= {low}, got {value!r}")
    if erosion_radius < 0:
        raise DamaUserError(f"erosion_radius must be >= 0, got {erosion_radius}")
    if min_distance is None:
        min_distance = max(3, crop_size // 24)
    if min_area is None:
        min_area = max(8, min_distance**2 // 2)
    if min_distance < 1 or min_area < 1:
        raise DamaUserError("min_distance and min_area must be >= 1")
    if max_crops is not None and max_crops < 1:
        raise DamaUserError(f"max_crops must be >= 1, got {max_crops}")

    files = find_tiff_inputs(images)
    shapes = {f: peek_image(f) for f in files}
    n_ch = shapes[files[0]][0]
    for f in files[1:]:
        if shapes[f][0] != n_ch:
            raise DamaUserError(
                f"{f}: image has {shapes[f][0]} channel(s) but {files[0]} has {n_ch}; "
                "all inputs must have the same channels"
            )
    if not -1 <= nuclear_channel < n_ch:
        raise DamaUserError(
            f"nuclear_channel {nuclear_channel} is out of range for {n_ch}-channel images "
            f"(use 0..{n_ch - 1}, or -1 for the channel sum)"
        )

    out = Path(out_dir)
    half = crop_size // 2
    margin = max(2 * min_distance, 16)
    written: list[Path] = []
    rows: list[tuple] = []
    empty: list[tuple[Path, str]] = []  # images that gave no crop, and why
    stems: dict[str, int] = {}
    with staged_output_dir(out, "crops.csv") as stage:
        for f in tqdm(files, desc="images", disable=not progress, leave=False):
            image, names = read_image(f, expected_channels=n_ch)
            dtype = shapes[f][3]
            nuc = image.sum(0) if nuclear_channel == -1 else image[nuclear_channel]
            nuc = ndi.gaussian_filter(nuc, 1.0)
            step = max(1, int(np.ceil(nuc.size / 2_000_000) ** 0.5))
            sample = nuc[::step, ::step]
            thr = threshold_otsu(sample) if sample.max() > sample.min() else np.inf
            stem = f.name.split(".")[0]
            n_same = stems.get(stem, 0)
            stems[stem] = n_same + 1
            folder = stem if n_same == 0 else f"{stem}_{n_same}"
            h, w = nuc.shape
            tiles = [(y, x) for y in _tile_starts(h, tile_size) for x in _tile_starts(w, tile_size)]
            n_img = 0
            for y0, x0 in tqdm(tiles, desc=f.name, disable=not progress, leave=False):
                y1, x1 = min(y0 + tile_size, h), min(x0 + tile_size, w)
                ya, xa = max(y0 - margin, 0), max(x0 - margin, 0)
                yb, xb = min(y1 + margin, h), min(x1 + margin, w)
                centres = find_cell_centres(
                    nuc[ya:yb, xa:xb], thr, erosion_radius=erosion_radius,
                    min_distance=min_distance, min_area=min_area,
                ) + [ya, xa]
                for cy, cx in centres:
                    iy, ix = int(round(cy)), int(round(cx))
                    if not (y0 <= iy < y1 and x0 <= ix < x1):
                        continue  # found again by the tile that owns it
                    top, left = iy - half, ix - half
                    if top < 0 or left < 0 or top + crop_size > h or left + crop_size > w:
                        continue  # border policy: skip, never pad
                    crop = image[:, top:top + crop_size, left:left + crop_size].astype(dtype)
                    rel = f"{folder}/crop_{n_img:05d}.ome.tif"
                    written.append(write_ome_tiff(stage / rel, crop, names, compression=None))
                    rows.append((rel, str(f), iy, ix))
                    n_img += 1
                    if max_crops is not None and len(written) >= max_crops:
                        break
                if max_crops is not None and len(written) >= max_crops:
                    break
            if n_img == 0:
                empty.append((f, _no_crop_reason(h, w, crop_size, thr)))
            if max_crops is not None and len(written) >= max_crops:
                break
        if not written:
            f, reason = empty[0]
            more = f" (and {len(empty) - 1} more image(s))" if len(empty) > 1 else ""
            raise DamaUserError(f"{f}: no crops: {reason}{more}")
        for f, reason in empty:
            print_warning(f"{f}: no crops: {reason}")
        write_csv(stage / "crops.csv", ("file", "source", "y", "x"), rows)
        written = [out / p.relative_to(stage) for p in written]
    return written
