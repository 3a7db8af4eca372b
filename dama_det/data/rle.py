"""COCO segmentations (RLE, uncompressed RLE, polygons): checked and made compressed
RLE, expanded to run lengths, painted into label maps, and encoded from crops.

Every reader of COCO masks goes through :func:`normalize_segmentation` (one
segmentation -> compressed RLE, ``counts`` a str) and :func:`check_rle_runs` (compressed
RLEs -> checked run lengths, in one batch): the evaluation inputs, the label painting
below and the training mapper's mask decoding. A malformed segmentation raises
:class:`MalformedSegmentation` naming the entry.

Images with hundreds of cells would need hundreds of full-size masks if every RLE were
decoded on its own; here the compressed RLE strings are expanded to run lengths in one
batch (faster-coco-eval's C++ mask API) and painted straight into one int32 label map.

Encoding goes the other way at the same cost: COCO RLE runs over the image in
column-major order, so the RLE of an instance can be built from its bounding-box crop
alone (:func:`encode_crop_rle`, O(crop) per instance, never O(image)).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pycocotools.mask as mask_util

from ..errors import DamaUserError


class MalformedSegmentation(DamaUserError, ValueError):
    """A COCO segmentation that is not a valid mask of its image (bad size, run lengths
    or polygons). A user error (one ``error:`` line on the command line) and a
    ``ValueError``."""


def runs_to_rle(counts: Sequence[int], height: int, width: int) -> dict[str, Any]:
    """Compressed RLE of run lengths.

    Args:
        counts: alternating runs of 0s and 1s (starting with 0s) over the column-major
            flattened ``(height, width)`` image.
        height, width: the image size.

    Returns:
        ``{"size": [height, width], "counts": str}``.
    """
    rle = mask_util.frPyObjects({"size": [height, width], "counts": list(counts)}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def pycocotools_rle(rle: Mapping[str, Any]) -> dict[str, Any]:
    """``rle`` with ``counts`` as bytes, the form ``pycocotools.mask`` functions take."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": rle["size"], "counts": counts}


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
    return runs_to_rle(counts, height, width)


def normalize_segmentation(
    segm: Any, height: int, width: int, where: str = "segmentation"
) -> dict[str, Any]:
    """Check one segmentation's form and return it as a compressed RLE (``counts`` a
    str); the run lengths of compressed strings are checked by :func:`check_rle_runs`.

    Args:
        segm: compressed RLE (``counts`` str/bytes), uncompressed RLE (``counts`` a list)
            or polygons (list of ``[x0, y0, x1, y1, ...]``).
        height, width: the image size the mask must have.
        where: names the entry in error messages, e.g. ``"results.json: entry 12"``.

    Returns:
        ``{"size": [height, width], "counts": str}``.

    Raises:
        MalformedSegmentation: wrong size, malformed counts or polygons.
    """
    if isinstance(segm, dict):
        size = segm.get("size")
        counts = segm.get("counts")
        if not isinstance(size, (list, tuple)) or [*size] != [height, width]:
            raise MalformedSegmentation(
                f"{where}: segmentation size {size} differs from the image size "
                f"[{height}, {width}]"
            )
        if isinstance(counts, bytes):
            counts = counts.decode("ascii", errors="replace")
        if isinstance(counts, str):  # run lengths: see check_rle_runs
            return {"size": [height, width], "counts": counts}
        if isinstance(counts, list):
            if not all(isinstance(c, (int, np.integer)) and c >= 0 for c in counts) or (
                sum(counts) != height * width
            ):
                raise MalformedSegmentation(
                    f"{where}: malformed uncompressed RLE (non-negative integers adding up "
                    f"to {height * width} pixels expected)"
                )
            return runs_to_rle(counts, height, width)
        raise MalformedSegmentation(
            f"{where}: RLE segmentation needs 'counts' (str or list) and 'size'")
    if isinstance(segm, list) and segm:
        polys = [p for p in segm if isinstance(p, list)]
        if len(polys) != len(segm) or not all(
            len(p) >= 6 and len(p) % 2 == 0 and all(isinstance(v, (int, float)) for v in p)
            for p in polys
        ):
            raise MalformedSegmentation(
                f"{where}: polygons must be lists of >= 3 (x, y) number pairs"
            )
        rle = mask_util.merge(mask_util.frPyObjects(polys, height, width))
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    raise MalformedSegmentation(
        f"{where}: unsupported segmentation {type(segm).__name__} (RLE or polygons)")


def check_rle_runs(rles: Sequence[Mapping[str, Any]], wheres: Sequence[str]) -> list[list[int]]:
    """Expand compressed RLEs to run lengths, all at once, checking that they are well
    formed.

    Each ``counts`` string must use the characters ``0``..``o`` of the COCO format
    and decode (faster-coco-eval's C++ ``toUncompressedRLE``) to run lengths that are
    >= 0 and add up to ``height * width``; pycocotools would otherwise write past its
    buffer or silently produce a wrong mask.

    Args:
        rles: ``{"size": [h, w], "counts": str}`` dicts (sizes may differ).
        wheres: the matching entry names for error messages.

    Returns:
        The run lengths of each RLE: alternating runs of 0s and 1s over the
        column-major (Fortran) flattened image, starting with 0s.

    Raises:
        MalformedSegmentation: naming the first malformed entry.
    """
    from faster_coco_eval.mask_api_new_cpp import toUncompressedRLE

    def fail(i: int):
        h, w = rles[i]["size"]
        raise MalformedSegmentation(
            f"{wheres[i]}: malformed RLE (run lengths must be >= 0 and add up to "
            f"{h}x{w} = {h * w} pixels)"
        )

    for i, rle in enumerate(rles):
        counts = rle["counts"]
        if counts and (min(counts) < "0" or max(counts) > "o"):
            fail(i)
    try:
        runs = toUncompressedRLE(list(rles)) if rles else []
    except (RuntimeError, ValueError):
        for i, rle in enumerate(rles):  # find the culprit
            try:
                toUncompressedRLE([rle])
            except (RuntimeError, ValueError):
                fail(i)
        raise
    out = []
    for i, (rle, decoded) in enumerate(zip(rles, runs)):
        counts = decoded["counts"]
        h, w = rle["size"]
        if sum(counts) != h * w or (counts and min(counts) < 0):
            fail(i)
        out.append(counts)
    return out


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

    Raises:
        MalformedSegmentation: naming the instance (``instance k``, from 1).
    """
    wheres = [f"instance {k + 1}" for k in range(len(segms))]
    rles = [normalize_segmentation(s, height, width, w) for s, w in zip(segms, wheres)]
    return [np.asarray(r, dtype=np.int64) for r in check_rle_runs(rles, wheres)]


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
