"""Merging per-tile detections into one set of instances, and painting label images.

Rules, for detections from overlapping windows of a tile grid:

1. *Edge rule (centre region).* A detection that touches an inner edge of its window
   (an edge that is not the image border) is probably cut off. If another window
   contains its box with room to spare (not touching that window's inner edges), that
   window saw the whole instance, so the cut-off copy is dropped.
2. *Duplicates.* The remaining detections of neighbouring windows that overlap inside
   the windows' common area (intersection over the smaller one >= ``threshold``) are
   one instance. A group with a complete (uncut) member keeps its best-scoring
   complete member (NMS); a group of cut-off pieces only (an instance larger than the
   overlap) becomes the union of the pieces, with the best score.

Every instance stays a crop (box + local mask) throughout.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .types import Box, Detection, Tile


def _intersect(a: Box, b: Box) -> Box | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _crop(det: Detection, region: Box) -> np.ndarray:
    """The part of ``det.mask`` inside ``region`` (which must lie within ``det.box``)."""
    bx, by = det.box[0], det.box[1]
    return det.mask[region[1] - by : region[3] - by, region[0] - bx : region[2] - bx]


def overlap_in_window(a: Detection, b: Detection, window: Box) -> float:
    """Intersection over the smaller mask, both restricted to ``window``.

    Args:
        a: a detection in image coordinates.
        b: another detection.
        window: ``(x0, y0, x1, y1)`` region both detections were seen in.

    Returns:
        ``|a & b| / min(|a|, |b|)`` inside ``window``; 0 if either is empty there.
    """
    ra, rb = _intersect(a.box, window), _intersect(b.box, window)
    if ra is None or rb is None:
        return 0.0
    rab = _intersect(ra, rb)
    if rab is None:
        return 0.0
    area_a = int(_crop(a, ra).sum())
    area_b = int(_crop(b, rb).sum())
    if area_a == 0 or area_b == 0:
        return 0.0
    inter = int(np.count_nonzero(_crop(a, rab) & _crop(b, rab)))
    return inter / min(area_a, area_b)


def touches_inner_edge(box: Box, tile: Tile, height: int, width: int) -> bool:
    """Whether ``box`` touches an edge of ``tile`` that is not the image border."""
    x0, y0, x1, y1 = box
    return (
        (x0 <= tile.x0 and tile.x0 > 0)
        or (y0 <= tile.y0 and tile.y0 > 0)
        or (x1 >= tile.x1 and tile.x1 < width)
        or (y1 >= tile.y1 and tile.y1 < height)
    )


def _fully_seen_by(box: Box, tile: Tile, height: int, width: int) -> bool:
    """Whether ``box`` lies inside ``tile`` without touching its inner edges."""
    x0, y0, x1, y1 = box
    return (
        (x0 > tile.x0 or tile.x0 == 0)
        and (y0 > tile.y0 or tile.y0 == 0)
        and (x1 < tile.x1 or tile.x1 == width)
        and (y1 < tile.y1 or tile.y1 == height)
        and x0 >= tile.x0 and y0 >= tile.y0 and x1 <= tile.x1 and y1 <= tile.y1
    )


def union_detections(dets: Sequence[Detection]) -> Detection:
    """One detection covering the union of ``dets``' masks, with the best score."""
    x0 = min(d.box[0] for d in dets)
    y0 = min(d.box[1] for d in dets)
    x1 = max(d.box[2] for d in dets)
    y1 = max(d.box[3] for d in dets)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for d in dets:
        mask[d.box[1] - y0 : d.box[3] - y0, d.box[0] - x0 : d.box[2] - x0] |= d.mask
    return Detection((x0, y0, x1, y1), mask, max(d.score for d in dets))


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def raster_order(dets: Sequence[Detection]) -> list[Detection]:
    """Sort detections by box (top, left, bottom, right), best score first on ties."""
    return sorted(dets, key=lambda d: (d.box[1], d.box[0], d.box[3], d.box[2], -d.score))


def _overlapping_windows(tiles: Sequence[Tile]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """For each window ``(row, col)``, the other windows of the grid it overlaps."""
    row_span = {t.row: (t.y0, t.y1) for t in tiles}
    col_span = {t.col: (t.x0, t.x1) for t in tiles}

    def near(spans: dict[int, tuple[int, int]]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, (a0, a1) in spans.items():
            out[i] = [j for j in range(i - 1, -1, -1) if spans[j][1] > a0][::-1]
            out[i] += [i]
            j = i + 1
            while j in spans and spans[j][0] < a1:
                out[i].append(j)
                j += 1
        return out

    rows, cols = near(row_span), near(col_span)
    present = {(t.row, t.col) for t in tiles}
    return {
        (t.row, t.col): [
            (r, c) for r in rows[t.row] for c in cols[t.col]
            if (r, c) != (t.row, t.col) and (r, c) in present
        ]
        for t in tiles
    }


def merge_tile_detections(
    per_tile: Sequence[tuple[Tile, Sequence[Detection]]],
    height: int,
    width: int,
    threshold: float = 0.5,
) -> list[Detection]:
    """Apply the edge rule and merge duplicates across neighbouring windows.

    Args:
        per_tile: ``[(tile, detections in image coordinates), ...]`` from
            :func:`~dama_det.inference.tiling.predict_tiles`.
        height: image height.
        width: image width.
        threshold: intersection-over-smaller above which two detections from
            neighbouring windows are the same instance.

    Returns:
        The merged detections in raster order (see :func:`raster_order`).
    """
    grid = {(t.row, t.col): t for t, _ in per_tile}
    near = _overlapping_windows([t for t, _ in per_tile])
    kept: list[Detection] = []
    cut: list[bool] = []
    owner: list[Tile] = []
    by_tile: dict[tuple[int, int], list[int]] = {}
    for tile, dets in per_tile:
        neighbours = [grid[rc] for rc in near[(tile.row, tile.col)]]
        for det in dets:
            is_cut = touches_inner_edge(det.box, tile, height, width)
            if is_cut and any(_fully_seen_by(det.box, u, height, width) for u in neighbours):
                continue  # a neighbouring window saw this instance whole
            by_tile.setdefault((tile.row, tile.col), []).append(len(kept))
            kept.append(det)
            cut.append(is_cut)
            owner.append(tile)
    if len(per_tile) <= 1:
        return raster_order(kept)

    uf = _UnionFind(len(kept))
    for (r, c), idx_a in by_tile.items():
        ta = grid[(r, c)]
        for rc in near[(r, c)]:
            idx_b = by_tile.get(rc)
            if not idx_b or rc < (r, c):  # each unordered pair of windows once
                continue
            window = _intersect(ta.box, grid[rc].box)
            if window is None:
                continue
            in_a = [i for i in idx_a if _intersect(kept[i].box, window)]
            in_b = [j for j in idx_b if _intersect(kept[j].box, window)]
            if not in_a or not in_b:
                continue
            boxes_b = np.array([kept[j].box for j in in_b])
            for i in in_a:
                bx = kept[i].box
                hit = (
                    (boxes_b[:, 0] < bx[2]) & (boxes_b[:, 2] > bx[0])
                    & (boxes_b[:, 1] < bx[3]) & (boxes_b[:, 3] > bx[1])
                )
                for k in np.flatnonzero(hit):
                    j = in_b[k]
                    if overlap_in_window(kept[i], kept[j], window) >= threshold:
                        uf.union(i, j)

    groups: dict[int, list[int]] = {}
    for i in range(len(kept)):
        groups.setdefault(uf.find(i), []).append(i)
    merged: list[Detection] = []
    for members in groups.values():
        if len(members) == 1:
            merged.append(kept[members[0]])
            continue
        whole = [i for i in members if not cut[i]]
        if whole:
            merged.append(kept[max(whole, key=lambda i: kept[i].score)])
        else:
            merged.append(union_detections([kept[i] for i in members]))
    return raster_order(merged)


def paint_labels(
    dets: Sequence[Detection], height: int, width: int
) -> tuple[np.ndarray, list[Detection]]:
    """Paint detections into one label image (0 = background, 1..N instances).

    Where masks overlap, the higher score wins. Label ``i + 1`` is ``dets[i]`` (order
    kept); instances left with no pixel are dropped and the labels renumbered 1..N.

    Args:
        dets: detections in image coordinates (crop masks).
        height: image height.
        width: image width.

    Returns:
        ``(labels, visible)``: uint16 (uint32 above 65535 instances) ``(H, W)`` label
        image, and the detections as painted (masks restricted to their visible pixels,
        boxes tightened), ``visible[k]`` being label ``k + 1``.
    """
    dtype = np.uint16 if len(dets) < 65536 else np.uint32
    labels = np.zeros((height, width), dtype=dtype)
    for i in sorted(range(len(dets)), key=lambda i: dets[i].score):
        x0, y0, x1, y1 = dets[i].box
        labels[y0:y1, x0:x1][dets[i].mask] = i + 1
    visible: list[Detection] = []
    for i, d in enumerate(dets):
        x0, y0, x1, y1 = d.box
        region = labels[y0:y1, x0:x1]
        own = region == i + 1
        rows, cols = np.flatnonzero(own.any(1)), np.flatnonzero(own.any(0))
        if rows.size == 0:
            continue  # hidden by higher-scoring instances
        new_label = len(visible) + 1
        if new_label != i + 1:
            # renumber inside the crop only; every label < i + 1 is already final, so
            # no pixel still holds the value new_label
            region[own] = new_label
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        visible.append(Detection((x0 + c0, y0 + r0, x0 + c1, y0 + r1),
                                 own[r0:r1, c0:c1].copy(), d.score))
    return labels, visible
