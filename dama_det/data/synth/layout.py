"""Layout of synthetic brain tissue: capillaries, endothelial cells, clustered cells.

A scene (a tile, or a sheet of cell-centred crops) is built by :func:`sample_scene`:
a few gently curving capillaries with elongated endothelial cells on their walls,
then neurons, astrocytes, oligodendrocytes and microglia placed by a clustered point
process (dense mixed clusters with touching and overlapping cells, rows of
interfascicular oligodendrocytes, scattered cells in between), kept off the vessels.
Cell shapes come from :mod:`.shapes`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from .shapes import BODY_RADIUS, CELL_TYPES, Cell, make_cell, random_walk_paths

# Relative abundance of the parenchymal types (endothelial cells come from vessels).
TYPE_FREQUENCY = {"neuron": 0.34, "astrocyte": 0.2, "oligodendrocyte": 0.28, "microglia": 0.18}
# Mean number of parenchymal cells per pixel (about 210 cells in a 512 x 512 tile).
CELL_DENSITY = 8.0e-4


@dataclass
class Vessel:
    """A capillary: centre line ``(M, 2)`` sampled every 0.5 px and its half width."""

    centerline: np.ndarray
    half_width: float


@dataclass
class Scene:
    """Cells (in painting order: later cells lie on top) and vessels of one scene."""

    height: int
    width: int
    cells: list[Cell]
    vessels: list[Vessel]


def sample_vessel(
    rng: np.random.Generator, through: tuple[float, float], angle: float, half_width: float,
    length: float,
) -> Vessel:
    """A gently curving capillary passing through a point, extending both ways."""
    starts = np.array([through, through], dtype=np.float64)
    angles = np.array([angle, angle + np.pi])
    lengths = np.array([length / 2, length / 2])
    pos, _, _, _ = random_walk_paths(rng, starts, angles, lengths, tortuosity=0.03)
    line = np.concatenate([pos[1, ::-1], np.asarray([through]), pos[0]], axis=0)
    return Vessel(line, float(half_width))


def _vessel_tangent(line: np.ndarray, i: int) -> float:
    j0, j1 = max(i - 4, 0), min(i + 4, len(line) - 1)
    d = line[j1] - line[j0]
    return float(np.arctan2(d[0], d[1]))


def endothelial_cells_on(
    rng: np.random.Generator, vessel: Vessel, height: int, width: int,
    skip_near: np.ndarray | None = None,
) -> list[Cell]:
    """Elongated endothelial cells on the wall of a vessel, oriented along it.

    Args:
        rng: random generator.
        vessel: the vessel.
        height, width: scene size; cells far outside are not made.
        skip_near: ``(K, 2)`` points (forced centre cells) to keep 22 px away from.
    """
    cells = []
    line = vessel.centerline
    i = int(rng.integers(0, 60))
    while i < len(line):
        angle = _vessel_tangent(line, i)
        side = rng.choice([-1.0, 1.0])
        normal = np.array([np.cos(angle), -np.sin(angle)])
        cy, cx = line[i] + side * vessel.half_width * normal
        far = skip_near is None or len(skip_near) == 0 or np.hypot(
            *(skip_near - [cy, cx]).T).min() > 22
        if -6 <= cy < height + 6 and -6 <= cx < width + 6 and far:
            cells.append(make_cell(rng, "endothelial", cy, cx, angle))
        i += int(2 * rng.uniform(35, 75))  # 0.5 px samples
    return cells


def _candidate_centres(
    rng: np.random.Generator, height: int, width: int, n_target: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered and scattered candidate positions with their types.

    Returns:
        ``(centres (N, 2), type indices (N,), clustered (N,) bool)``.
    """
    types = list(TYPE_FREQUENCY)
    probs = np.array([TYPE_FREQUENCY[t] for t in types])
    pts, kinds, clustered = [], [], []
    area_units = height * width / 512.0**2
    for _ in range(rng.poisson(6.0 * area_units)):
        c = rng.uniform([0, 0], [height, width])
        if rng.random() < 0.25:  # a row of interfascicular oligodendrocytes
            n = int(rng.integers(4, 9))
            a = rng.uniform(0, np.pi)
            step = rng.uniform(9.0, 11.0)
            k = np.arange(n) - n / 2
            p = c + np.outer(k * step, [np.sin(a), np.cos(a)]) + rng.normal(0, 1.2, (n, 2))
            kinds.append(np.full(n, types.index("oligodendrocyte")))
        else:  # a dense mixed cluster around a dominant type
            n = int(rng.integers(6, 14))
            dominant = rng.choice(len(types), p=probs)
            pr = 0.5 * probs + 0.5 * np.eye(len(types))[dominant]
            p = c + rng.normal(0, rng.uniform(11, 18), (n, 2))
            kinds.append(rng.choice(len(types), n, p=pr))
        pts.append(p)
        clustered.append(np.ones(len(p), bool))
    n_scatter = int(2.5 * n_target)
    pts.append(rng.uniform([0, 0], [height, width], (n_scatter, 2)))
    kinds.append(rng.choice(len(types), n_scatter, p=probs))
    clustered.append(np.zeros(n_scatter, bool))
    return np.concatenate(pts), np.concatenate(kinds), np.concatenate(clustered)


def sample_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    center_type: str | None = None,
    centers: Sequence[tuple[float, float]] | None = None,
    density: float = CELL_DENSITY,
) -> Scene:
    """Lay out one scene of brain tissue.

    Args:
        rng: random generator (the only source of randomness).
        height, width: scene size (px).
        center_type: if given, cells of this type are put exactly at ``centers``
            and painted last (on top), for cell-centred crops; an endothelial centre
            cell gets its own vessel.
        centers: ``(row, col)`` positions of the forced cells; default: the scene
            centre.
        density: parenchymal cells per px^2.

    Returns:
        The :class:`Scene`; ``cells`` are in painting order.
    """
    types = list(TYPE_FREQUENCY)
    diag = float(np.hypot(height, width))
    forced_at = np.zeros((0, 2))
    if center_type is not None:
        if center_type not in CELL_TYPES:
            raise ValueError(f"unknown cell type {center_type!r}")
        pts = [((height - 1) / 2.0, (width - 1) / 2.0)] if centers is None else centers
        forced_at = np.asarray(pts, np.float64).reshape(-1, 2)
    vessels: list[Vessel] = []
    forced: list[Cell] = []
    for cy, cx in forced_at:
        if center_type == "endothelial":
            a = rng.uniform(0, np.pi)
            hw = rng.uniform(3.5, 5.5)
            normal = np.array([np.cos(a), -np.sin(a)])
            through = np.array([cy, cx]) - rng.choice([-1.0, 1.0]) * hw * normal
            vessels.append(sample_vessel(rng, tuple(through), a, hw, rng.uniform(140, 220)))
            forced.append(make_cell(rng, "endothelial", cy, cx, a))
        else:
            forced.append(make_cell(rng, center_type, cy, cx))
    area_units = height * width / 512.0**2
    if center_type is None:
        n_vessels = 1 + rng.poisson(0.6 * area_units)
    elif center_type == "endothelial":
        n_vessels = 0
    else:
        n_vessels = rng.poisson(0.12 * len(forced_at))
    for _ in range(n_vessels):
        through = tuple(rng.uniform([0.1 * height, 0.1 * width], [0.9 * height, 0.9 * width]))
        vessels.append(sample_vessel(rng, through, rng.uniform(0, np.pi), rng.uniform(3.0, 6.0),
                                     2.2 * diag))

    # distance to the nearest vessel centre line, to keep other cells off vessels
    on_line = np.zeros((height, width), bool)
    endothelial: list[Cell] = []
    for v in vessels:
        ij = np.round(v.centerline).astype(int)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < height) & (ij[:, 1] >= 0) & (ij[:, 1] < width)
        on_line[ij[ok, 0], ij[ok, 1]] = True
        endothelial += endothelial_cells_on(rng, v, height, width, skip_near=forced_at)
    vessel_dist = ndi.distance_transform_edt(~on_line) if on_line.any() else None
    max_hw = max((v.half_width for v in vessels), default=0.0)

    n_target = max(1, rng.poisson(density * height * width))
    cand, kinds, clustered = _candidate_centres(rng, height, width, n_target)
    accepted = forced_at.copy()
    acc_r = np.full(len(forced_at), BODY_RADIUS[center_type][1] if center_type else 0.0)
    parenchymal: list[tuple[str, float, float]] = []
    for p, k, cl in zip(cand, kinds, clustered):
        if len(parenchymal) >= n_target:
            break
        if not (0 <= p[0] < height and 0 <= p[1] < width):
            continue
        t = types[k]
        r = rng.uniform(*BODY_RADIUS[t])
        if vessel_dist is not None and vessel_dist[int(p[0]), int(p[1])] < max_hw + r + 1.5:
            continue
        if len(acc_r):
            d = np.hypot(*(accepted - p).T)
            if np.any(d < (0.62 if cl else 0.85) * (acc_r + r)):
                continue
        accepted = np.vstack([accepted, p])
        acc_r = np.append(acc_r, r)
        parenchymal.append((t, float(p[0]), float(p[1])))

    cells = [make_cell(rng, t, y, x) for t, y, x in parenchymal] + endothelial
    order = rng.permutation(len(cells))
    cells = [cells[i] for i in order] + forced
    return Scene(height, width, cells, vessels)
