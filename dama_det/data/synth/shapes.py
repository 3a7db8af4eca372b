"""Geometry of synthetic brain cells: body/nucleus polygons and branching processes.

Everything is in pixel coordinates ``(row, col)`` and uses only numpy. The scale is
about 0.65 um per pixel: neuronal nuclei have radii of 7-9 px, glial nuclei 4-6 px,
neuronal somata 11-14 px. :func:`make_cell` builds one cell of a type: a star-convex
body polygon (pyramidal for neurons, elongated for endothelial cells), a nucleus
polygon and, for astrocytes (star-shaped) and microglia (ramified), a point cloud of
branching processes. The tissue layout is in :mod:`.layout`, rendering in
:mod:`.render`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CELL_TYPES: tuple[str, ...] = ("neuron", "astrocyte", "oligodendrocyte", "microglia", "endothelial")
# Equivalent body radius (px) used for spacing, per type: (low, high).
BODY_RADIUS = {
    "neuron": (10.5, 13.5),
    "astrocyte": (6.5, 8.0),
    "oligodendrocyte": (5.0, 6.5),
    "microglia": (5.0, 6.5),
    "endothelial": (4.0, 5.0),
}


@dataclass
class Ellipse:
    """An ellipse: centre ``(cy, cx)``, semi-axes ``a >= b`` and orientation (rad)."""

    cy: float
    cx: float
    a: float
    b: float
    angle: float


@dataclass
class Cell:
    """One synthetic cell.

    Attributes:
        cell_type: one of :data:`CELL_TYPES`.
        body: ``(K, 2)`` polygon ``(row, col)`` of the cell body (the instance mask,
            together with the nucleus).
        nucleus: ``(K, 2)`` polygon of the nucleus.
        nucleus_ellipse: the ellipse the nucleus polygon was made from (used for the
            radial chromatin profile).
        processes: ``(P, 3)`` points ``(row, col, weight)`` of thin processes (empty
            for types without).
        brightness: per-cell multiplier of every stain (lognormal around 1).
        marker_level: per-cell multiplier of the type marker (expression level).
    """

    cell_type: str
    body: np.ndarray
    nucleus: np.ndarray
    nucleus_ellipse: Ellipse
    processes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float64))
    brightness: float = 1.0
    marker_level: float = 1.0

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(row, col)`` of the nucleus."""
        return self.nucleus_ellipse.cy, self.nucleus_ellipse.cx


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def star_polygon(
    rng: np.random.Generator,
    ellipse: Ellipse,
    roughness: float,
    n_vertices: int = 48,
    bumps: tuple[tuple[float, float, float], ...] = (),
) -> np.ndarray:
    """A star-convex polygon: an ellipse with random low-order harmonic wobble.

    Args:
        rng: random generator.
        ellipse: the base shape.
        roughness: amplitude of the harmonic perturbation (fraction of the radius).
        n_vertices: polygon vertex count.
        bumps: extra ``(polar angle, length px, angular width rad)`` protrusions
            (e.g. the apical dendrite of a pyramidal neuron).

    Returns:
        ``(n_vertices, 2)`` array of ``(row, col)`` vertices.
    """
    theta = np.linspace(0.0, 2 * np.pi, n_vertices, endpoint=False)
    t = theta - ellipse.angle
    r = ellipse.a * ellipse.b / np.sqrt((ellipse.b * np.cos(t)) ** 2 + (ellipse.a * np.sin(t)) ** 2)
    orders = np.arange(2, 6)
    amp = roughness * rng.uniform(0.3, 1.0, orders.size) / (orders - 1)
    phase = rng.uniform(0, 2 * np.pi, orders.size)
    r = r * (1.0 + (amp[:, None] * np.cos(orders[:, None] * theta + phase[:, None])).sum(0))
    for angle, length, width in bumps:
        r = r + length * np.exp(-((_wrap(theta - angle) / width) ** 2))
    r = np.maximum(r, 0.5)
    return np.stack([ellipse.cy + r * np.sin(theta), ellipse.cx + r * np.cos(theta)], axis=1)


def random_walk_paths(
    rng: np.random.Generator,
    starts: np.ndarray,
    angles: np.ndarray,
    lengths: np.ndarray,
    tortuosity: float,
    step: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random-walk curves (processes, vessels), all paths at once.

    Args:
        rng: random generator.
        starts: ``(P, 2)`` start points ``(row, col)``.
        angles: ``(P,)`` initial directions (rad; 0 = +col, pi/2 = +row).
        lengths: ``(P,)`` path lengths (px).
        tortuosity: standard deviation of the direction change per sqrt(px).
        step: sampling step along the path (px).

    Returns:
        ``(pos (P, S, 2), direction (P, S), fraction (P, S), valid (P, S))``: points,
        local direction, fraction of the path length, and which samples lie within
        each path's length.
    """
    n_paths = len(starts)
    n_steps = max(1, int(np.ceil(float(np.max(lengths, initial=0.0)) / step)))
    turn = rng.normal(0.0, tortuosity * np.sqrt(step), (n_paths, n_steps))
    direction = angles[:, None] + np.cumsum(turn, axis=1)
    delta = step * np.stack([np.sin(direction), np.cos(direction)], axis=-1)
    pos = starts[:, None, :] + np.cumsum(delta, axis=1)
    s = np.arange(1, n_steps + 1) * step
    fraction = s[None, :] / np.maximum(lengths[:, None], 1e-6)
    return pos, direction, fraction, fraction <= 1.0


def thick_path_points(
    rng: np.random.Generator,
    pos: np.ndarray,
    direction: np.ndarray,
    width: np.ndarray,
    weight: np.ndarray,
    valid: np.ndarray,
    copies: int = 3,
) -> np.ndarray:
    """Turn path samples into a point cloud with the given local width.

    Args:
        pos, direction, valid: as returned by :func:`random_walk_paths`.
        width: ``(P, S)`` local width (px).
        weight: ``(P, S)`` local intensity per unit length.
        copies: points per sample, spread across the width.

    Returns:
        ``(N, 3)`` points ``(row, col, weight)``.
    """
    p, d, w, g = pos[valid], direction[valid], width[valid], weight[valid]
    offset = rng.uniform(-0.5, 0.5, (copies, len(p))) * w[None]
    rows = p[None, :, 0] + offset * np.cos(d)[None]
    cols = p[None, :, 1] - offset * np.sin(d)[None]
    weights = np.broadcast_to(g[None] / copies, rows.shape)
    return np.stack([rows.ravel(), cols.ravel(), weights.ravel()], axis=1)


def branching_processes(
    rng: np.random.Generator,
    center: tuple[float, float],
    *,
    n_primary: int,
    start_radius: float,
    length: tuple[float, float],
    width: tuple[float, float],
    tortuosity: float,
    n_secondary: tuple[int, int],
    secondary_length: tuple[float, float],
    bushiness: float = 0.0,
) -> np.ndarray:
    """Processes radiating from a soma, each with a few side branches.

    Args:
        rng: random generator.
        center: soma centre ``(row, col)``.
        n_primary: number of primary processes.
        start_radius: distance from the centre where processes start (px).
        length: ``(low, high)`` primary length (px).
        width: ``(at the soma, at the tip)`` width (px); it tapers linearly.
        tortuosity: direction noise (see :func:`random_walk_paths`).
        n_secondary: ``(low, high)`` side branches per primary process.
        secondary_length: ``(low, high)`` side-branch length (px).
        bushiness: weight of a fine haze of tiny branchlets around the processes
            (protoplasmic astrocytes); 0 for none.

    Returns:
        ``(N, 3)`` points ``(row, col, weight)``; weights ~1 per px of thick process.
    """
    cy, cx = center
    base = rng.uniform(0, 2 * np.pi)
    angles = base + np.linspace(0, 2 * np.pi, n_primary, endpoint=False)
    angles = angles + rng.normal(0, 0.35, n_primary)
    starts = np.stack([cy + start_radius * np.sin(angles), cx + start_radius * np.cos(angles)], 1)
    lengths = rng.uniform(*length, n_primary)
    pos, direction, frac, valid = random_walk_paths(rng, starts, angles, lengths, tortuosity)
    w = width[0] + (width[1] - width[0]) * np.clip(frac, 0, 1)
    points = [thick_path_points(rng, pos, direction, w, 0.5 * w, valid)]

    # Side branches start at random places on the primaries.
    n_sec = rng.integers(n_secondary[0], n_secondary[1] + 1, n_primary)
    parent = np.repeat(np.arange(n_primary), n_sec)
    if parent.size:
        at = rng.uniform(0.25, 0.9, parent.size)
        idx = np.minimum((at * lengths[parent] / 0.5).astype(int), pos.shape[1] - 1)
        sec_starts = pos[parent, idx]
        side = rng.choice([-1.0, 1.0], parent.size)
        sec_angles = direction[parent, idx] + side * rng.uniform(0.4, 1.1, parent.size)
        sec_len = rng.uniform(*secondary_length, parent.size)
        spos, sdir, sfrac, svalid = random_walk_paths(
            rng, sec_starts, sec_angles, sec_len, tortuosity * 1.2
        )
        w0 = (width[0] + (width[1] - width[0]) * at)[:, None] * 0.7
        sw = w0 + (width[1] * 0.8 - w0) * np.clip(sfrac, 0, 1)
        points.append(thick_path_points(rng, spos, sdir, sw, 0.5 * sw, svalid, copies=2))
    if bushiness > 0:
        # Fine perisomatic haze (the spongiform territory of protoplasmic astrocytes).
        n = int(60 * bushiness * n_primary)
        r = start_radius + np.abs(rng.normal(0, 0.45 * length[1], n))
        a = rng.uniform(0, 2 * np.pi, n)
        haze = np.stack([cy + r * np.sin(a), cx + r * np.cos(a), np.full(n, 0.35)], 1)
        points.append(haze)
    return np.concatenate(points, axis=0)


def _ellipse(cy: float, cx: float, a: float, b: float, angle: float) -> Ellipse:
    return Ellipse(float(cy), float(cx), float(max(a, b)), float(min(a, b)), float(angle))


def make_cell(
    rng: np.random.Generator, cell_type: str, cy: float, cx: float, angle: float | None = None
) -> Cell:
    """Build one cell of the given type centred (nucleus centre) at ``(cy, cx)``.

    Args:
        rng: random generator.
        cell_type: one of :data:`CELL_TYPES`.
        cy, cx: nucleus centre (px).
        angle: orientation (rad) for elongated cells; random when None.

    Returns:
        The :class:`Cell`.
    """
    if angle is None:
        angle = rng.uniform(0, np.pi)
    brightness = float(rng.lognormal(0.0, 0.2))
    marker = float(rng.lognormal(0.0, 0.3))
    processes = np.zeros((0, 3))
    if cell_type == "neuron":
        r = rng.uniform(*BODY_RADIUS["neuron"])
        body_e = _ellipse(cy, cx, r * rng.uniform(1.0, 1.25), r * rng.uniform(0.8, 1.0), angle)
        # Pyramidal shape: an apical dendrite stub and two basal corners.
        apical = rng.uniform(0, 2 * np.pi)
        bumps = (
            (apical, r * rng.uniform(0.4, 0.9), 0.28),
            (apical + 2.3, r * rng.uniform(0.1, 0.35), 0.4),
            (apical - 2.3, r * rng.uniform(0.1, 0.35), 0.4),
        )
        # the soma extends towards the apical dendrite; the nucleus stays at (cy, cx)
        body = star_polygon(rng, body_e, 0.12, bumps=bumps)
        body = body + 0.12 * r * np.array([np.sin(apical), np.cos(apical)])
        rn = r * rng.uniform(0.58, 0.68)
        nuc_e = _ellipse(cy, cx, rn * rng.uniform(1.0, 1.15), rn, angle)
        nucleus = star_polygon(rng, nuc_e, 0.04)
    elif cell_type == "astrocyte":
        rn = rng.uniform(4.3, 5.6)
        nuc_e = _ellipse(cy, cx, rn * rng.uniform(1.0, 1.3), rn, angle)
        nucleus = star_polygon(rng, nuc_e, 0.06)
        rb = rng.uniform(*BODY_RADIUS["astrocyte"])
        body = star_polygon(rng, _ellipse(cy, cx, rb * 1.1, rb * 0.9, angle), 0.3)
        processes = branching_processes(
            rng, (cy, cx), n_primary=int(rng.integers(5, 9)), start_radius=rb * 0.7,
            length=(16, 32), width=(2.6, 0.8), tortuosity=0.12, n_secondary=(1, 3),
            secondary_length=(5, 12), bushiness=1.5,
        )
    elif cell_type == "oligodendrocyte":
        rn = rng.uniform(3.9, 5.0)
        nuc_e = _ellipse(cy, cx, rn * rng.uniform(1.0, 1.15), rn, angle)
        nucleus = star_polygon(rng, nuc_e, 0.05)
        grow = rng.uniform(1.15, 1.3)
        body = star_polygon(rng, _ellipse(cy, cx, nuc_e.a * grow, nuc_e.b * grow, angle), 0.12)
    elif cell_type == "microglia":
        rn = rng.uniform(3.0, 3.8)
        nuc_e = _ellipse(cy, cx, rn * rng.uniform(1.5, 1.9), rn, angle)
        nucleus = star_polygon(rng, nuc_e, 0.1)  # bean-shaped, elongated
        body = star_polygon(rng, _ellipse(cy, cx, nuc_e.a + 1.6, nuc_e.b + 1.4, angle), 0.22)
        processes = branching_processes(
            rng, (cy, cx), n_primary=int(rng.integers(3, 6)), start_radius=nuc_e.b + 0.8,
            length=(16, 34), width=(1.6, 0.5), tortuosity=0.22, n_secondary=(2, 4),
            secondary_length=(5, 14),
        )
    elif cell_type == "endothelial":
        nuc_e = _ellipse(cy, cx, rng.uniform(5.5, 7.5), rng.uniform(2.2, 3.0), angle)
        nucleus = star_polygon(rng, nuc_e, 0.04)
        body = star_polygon(
            rng, _ellipse(cy, cx, nuc_e.a + rng.uniform(3.5, 6.0), nuc_e.b + 1.3, angle), 0.08
        )
    else:  # pragma: no cover - guarded by callers
        raise ValueError(f"unknown cell type {cell_type!r}")
    return Cell(cell_type, body, nucleus, nuc_e, processes, brightness, marker)
