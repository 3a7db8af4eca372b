"""COCO segmentations (RLE, uncompressed RLE, polygons) as run lengths and label maps.

Images with hundreds of cells would need hundreds of full-size masks if every RLE were
decoded on its own; here the compressed RLE strings are expanded to run lengths in one
batch (faster-coco-eval's C++ mask API) and painted straight into one int32 label map.

Encoding goes the other way at the same cost: COCO RLE runs over the image in
column-major order, so the RLE of an instance can be built from its bounding-box crop
alone (:func:`encode_crop_rle`, O(crop) per instance, never O(image)).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pycocotools.mask as mask_util


def encode_crop_rle(
    mask: np.ndarray, x0: int, y0: int, height: int, width: int
) -> dict[str, Any]:
    """COCO compressed RLE of a crop mask placed in a ``height x width`` image.

    The runs of each crop column are shifted to the column's offset in the
    column-major (Fortran) flattened image, and runs that continue from the bottom of
    one image column into the top of the next are joined, so the result is the same
    byte string as ``pycocotools.mask.encode`` of the full-image mask, at O(crop) cost.

    Args:
        mask: ``(h, w)`` crop; nonzero = instance pixel. Any bool / integer dtype.
        x0: image column of the crop's first column.
        y0: image row of the crop's first row.
        height: image height ``H``.
        width: image width ``W``.

    Returns:
        ``{"size": [H, W], "counts": str}``: compressed RLE (``counts`` ASCII str),
        byte-identical to ``pycocotools.mask.encode`` of the ``(H, W)`` mask that holds
        ``mask`` at rows ``y0:y0 + h`` and columns ``x0:x0 + w`` and 0 elsewhere.

    Raises:
        ValueError: ``mask`` is not 2-D or does not fit inside the image there.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a crop mask must be 2-D, got shape {mask.shape}")
    h, w = mask.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(
            f"crop of {h}x{w} at (y0={y0}, x0={x0}) lies outside the {height}x{width} image"
        )
    col = np.zeros((w, h + 2), dtype=np.int8)
    col[:, 1:-1] = mask.T != 0  # columns of the crop, each padded with a 0 both ends
    edges = np.diff(col, axis=1)
    cs, starts = np.nonzero(edges == 1)  # starts[k] is a row offset inside column cs[k]
    _, ends = np.nonzero(edges == -1)
    base = (int(x0) + cs).astype(np.int64) * height + int(y0)
    s, e = base + starts, base + ends
    # column runs that touch (a run ending at the bottom of one image column and the
    # next starting at the top of the next) are one run in the flattened image
    if s.size > 1:
        joined = s[1:] == e[:-1]
        if joined.any():
            keep_start = np.concatenate([[True], ~joined])
            keep_end = np.concatenate([~joined, [True]])
            s, e = s[keep_start], e[keep_end]
    bounds = np.empty(2 * s.size + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[1::2] = s
    bounds[2::2] = e
    counts = np.diff(np.concatenate([bounds, [height * width]])).tolist()
    if len(counts) > 1 and counts[-1] == 0:  # the last run ends at the last pixel
        counts.pop()
    rle = mask_util.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _to_compressed_or_runs(segm: Any, height: int, width: int) -> dict:
    """Normalise one COCO segmentation to an RLE dict (``counts`` str or list of runs)."""
    if isinstance(segm, dict):
        counts = segm.get("counts")
        size = [int(v) for v in segm.get("size", [])]
        if size != [height, width]:
            raise ValueError(f"RLE size {size} differs from the image size {[height, width]}")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        if not isinstance(counts, (str, list)):
            raise ValueError(f"RLE counts of type {type(counts).__name__}")
        return {"size": size, "counts": counts}
    if isinstance(segm, list):  # polygons
        rle = mask_util.merge(mask_util.frPyObjects(segm, height, width))
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    raise ValueError(f"unsupported segmentation of type {type(segm).__name__}")


def segmentation_runs(segms: Sequence[Any], height: int, width: int) -> list[np.ndarray]:
    """Run lengths (uncompressed RLE ``counts``) of COCO segmentations, without decoding.

    Compressed RLE strings are expanded in one batch by faster-coco-eval's C++ mask API,
    so an image with hundreds of instances never needs hundreds of full-size masks.

    Args:
        segms: RLE dicts (compressed or uncompressed) or polygon lists.
        height: image height.
        width: image width.

    Returns:
        One int64 array per segmentation: alternating runs of 0s and 1s over the
        column-major (Fortran) flattened image, starting with 0s.
    """
    from faster_coco_eval import mask_api_new_cpp

    rles = [_to_compressed_or_runs(s, height, width) for s in segms]
    compressed = [i for i, r in enumerate(rles) if isinstance(r["counts"], str)]
    runs: list[Any] = [r["counts"] for r in rles]
    if compressed:
        expanded = mask_api_new_cpp.toUncompressedRLE([rles[i] for i in compressed])
        for i, r in zip(compressed, expanded):
            runs[i] = r["counts"]
    out = []
    for r in runs:
        arr = np.asarray(r, dtype=np.int64)
        if arr.sum() != height * width or (arr < 0).any():
            raise ValueError(f"RLE runs cover {int(arr.sum())} pixels, not {height}x{width}")
        out.append(arr)
    return out


def paint_segmentations(
    segms: Sequence[Any],
    height: int,
    width: int,
    values: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint COCO segmentations into one label image, in list order (later ones win).

    Args:
        segms: RLE dicts (compressed or uncompressed) or polygon lists.
        height: image height.
        width: image width.
        values: label value of each segmentation; default 1..N.

    Returns:
        ``(labels, areas)``: int32 ``(height, width)`` label image and int64 ``(N,)``
        full area of each segmentation (compare with the painted pixel counts to find
        instances hidden by overlaps).
    """
    values = list(range(1, len(segms) + 1)) if values is None else [int(v) for v in values]
    flat = np.zeros(height * width, dtype=np.int32)  # column-major, as RLE
    areas = np.zeros(len(segms), dtype=np.int64)
    for k, runs in enumerate(segmentation_runs(segms, height, width)):
        ends = np.cumsum(runs)
        starts, lengths = (ends - runs)[1::2], runs[1::2]
        keep = lengths > 0
        starts, lengths = starts[keep], lengths[keep]
        total = int(lengths.sum())
        areas[k] = total
        if total:
            offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
            flat[offsets + np.arange(total)] = values[k]
    return np.ascontiguousarray(flat.reshape(width, height).T), areas
