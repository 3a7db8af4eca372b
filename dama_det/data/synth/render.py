"""Rendering of a synthetic scene into a 7-channel fluorescence image and labels.

Pipeline (all numpy / scipy.ndimage, vectorised per cell bounding box):

1. *Stain*: every cell adds its stains to an ideal fluorophore map ``(7, H, W)``:
   DAPI and Histones in every nucleus (chromatin texture, bright chromocentres, a
   histone rim), the type marker in the nucleus and/or body (NeuN nucleus + soma,
   S100 soma + star-shaped processes, Olig2 nucleus, Iba1 soma + ramified processes,
   RECA1 elongated endothelial bodies + vessel walls), weak unspecific signal,
   lipofuscin granules (broad-spectrum autofluorescence) in some neurons.
2. *Tissue background*: smooth autofluorescence and fine neuropil texture.
3. *Optics*: per-channel Gaussian point-spread blur plus out-of-focus haze, and an
   uneven (vignetted, tilted) illumination field.
4. *Camera*: photon (Poisson) noise, read noise, offset, uint16.

The label image holds, per pixel, the top-most (last painted) cell body; cells left
with fewer than ``min_visible`` visible pixels are dropped and labels renumbered.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

from .layout import Scene
from .shapes import Cell

CHANNEL_NAMES: tuple[str, ...] = ("DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1")
MARKER_OF_TYPE = {
    "neuron": "NeuN",
    "astrocyte": "S100",
    "oligodendrocyte": "Olig2",
    "microglia": "Iba1",
    "endothelial": "RECA1",
}
_CH = {name: i for i, name in enumerate(CHANNEL_NAMES)}

# Stain levels (relative fluorophore concentration) per type and compartment.
# "nucleus" and "body" (the cytoplasm, i.e. body minus nucleus) map channel -> level.
STAINS: dict[str, dict[str, dict[str, float]]] = {
    "neuron": {
        "nucleus": {"DAPI": 0.55, "Histones": 0.7, "NeuN": 1.0},
        "body": {"NeuN": 0.42, "Histones": 0.04},
        "process": {},
    },
    "astrocyte": {
        "nucleus": {"DAPI": 0.85, "Histones": 0.85, "S100": 0.6, "Olig2": 0.05},
        "body": {"S100": 0.95},
        "process": {"S100": 0.55},
    },
    "oligodendrocyte": {
        "nucleus": {"DAPI": 1.0, "Histones": 0.9, "Olig2": 1.0},
        "body": {"Olig2": 0.08, "S100": 0.05},
        "process": {},
    },
    "microglia": {
        "nucleus": {"DAPI": 0.95, "Histones": 0.85, "Iba1": 0.55},
        "body": {"Iba1": 1.0},
        "process": {"Iba1": 0.75},
    },
    "endothelial": {
        "nucleus": {"DAPI": 0.8, "Histones": 0.8, "RECA1": 0.5},
        "body": {"RECA1": 1.0},
        "process": {},
    },
}
# Detector counts for a stain level of 1.0 (exposure x fluorophore brightness).
EXPOSURE = np.array([24000, 15000, 20000, 14000, 17000, 15000, 16000], np.float32)
# Tissue autofluorescence (stain-level units) and its neuropil texture per channel.
AUTOFLUORESCENCE = np.array([0.035, 0.04, 0.05, 0.07, 0.04, 0.06, 0.05], np.float32)
NEUROPIL_TEXTURE = np.array([0.01, 0.015, 0.03, 0.06, 0.02, 0.05, 0.02], np.float32)
# Lipofuscin emission per channel (broad spectrum, stronger at long wavelengths).
LIPOFUSCIN = np.array([0.35, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7], np.float32)
# Point-spread blur (px) per channel: shorter wavelengths are sharper.
PSF_SIGMA = np.array([1.0, 1.05, 1.15, 1.2, 1.2, 1.3, 1.35], np.float32)
HAZE_BOX = 13  # two passes: sigma = sqrt(2 * (13**2 - 1) / 12) = 5.3 px
HAZE_FRACTION = 0.18
CAMERA_OFFSET = 100.0
READ_NOISE = 4.0  # ADU
POISSON_EXACT_BELOW = 100.0  # electrons; above, shot noise uses the normal approximation
GAIN = 0.6  # electrons per ADU (low gain: visible shot noise)
# Size of the virtual field of view over which the illumination varies (px).
FIELD_OF_VIEW = 1400.0


@dataclass
class RenderedScene:
    """Output of :func:`render_scene`.

    Attributes:
        image: ``(7, H, W)`` uint16 image.
        labels: ``(H, W)`` int32 instance labels (0 = background, 1..N).
        cell_types: ``N`` type names; ``cell_types[k - 1]`` is the type of label k.
    """

    image: np.ndarray
    labels: np.ndarray
    cell_types: list[str]


def _normalised_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return f / max(float(f.std()), 1e-6)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: int = 48) -> np.ndarray:
    """A very smooth random field with unit std (low-resolution noise, upsampled)."""
    small = (shape[0] // cell + 3, shape[1] // cell + 3)
    coarse = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), 1.0)
    up = ndi.zoom(coarse, cell, order=1, mode="nearest", prefilter=False)
    off = (cell, cell)
    f = up[off[0]:off[0] + shape[0], off[1]:off[1] + shape[1]]
    return f / max(float(f.std()), 1e-6)


def illumination_field(
    rng: np.random.Generator, shape: tuple[int, int], origin: tuple[float, float]
) -> np.ndarray:
    """Uneven illumination: vignetting and a tilt over a virtual field of view.

    Args:
        rng: random generator (draws the vignetting strength and tilt).
        shape: ``(H, W)``.
        origin: position of the scene's top-left pixel in the field of view (px).

    Returns:
        ``(H, W)`` float32 multiplier, about 0.6-1.05.
    """
    yy = (np.arange(shape[0], dtype=np.float32) + origin[0]) / FIELD_OF_VIEW - 0.5
    xx = (np.arange(shape[1], dtype=np.float32) + origin[1]) / FIELD_OF_VIEW - 0.5
    r2 = yy[:, None] ** 2 + xx[None, :] ** 2
    vignette = 1.0 - rng.uniform(0.35, 0.7) * r2 / 0.5
    tilt = 1.0 + rng.uniform(-0.12, 0.12) * yy[:, None] + rng.uniform(-0.12, 0.12) * xx[None, :]
    return (vignette * tilt).astype(np.float32)


def camera(rng: np.random.Generator, expected_adu: np.ndarray) -> np.ndarray:
    """Photon shot noise, read noise, offset and 16-bit quantisation.

    Shot noise is Poisson on the electron count ``lam = expected_adu * GAIN``. Where
    ``lam >= POISSON_EXACT_BELOW`` (nearly every pixel: the tissue background alone
    gives a few hundred electrons) shot and read noise are drawn together from their
    normal approximation (mean ``lam``, variance ``lam``; skewness < 0.1, so it is
    indistinguishable from Poisson, and several times faster); dimmer pixels get
    exact Poisson draws plus read noise.

    Args:
        rng: random generator.
        expected_adu: ``(C, H, W)`` float32 expected signal above the camera offset (ADU).

    Returns:
        ``(C, H, W)`` uint16 image.
    """
    lam = np.maximum(expected_adu, 0, dtype=np.float32) * np.float32(GAIN)
    gain = np.float32(GAIN)
    # normal approximation of shot + read noise in one draw: var = lam / G^2 + read^2
    std = np.sqrt(lam / gain**2 + np.float32(READ_NOISE) ** 2)
    adu = (lam / gain + np.float32(CAMERA_OFFSET)
           + std * rng.standard_normal(lam.shape, dtype=np.float32))
    dim = lam < POISSON_EXACT_BELOW
    if dim.any():
        n = int(dim.sum())
        exact = rng.poisson(lam[dim]) / gain + CAMERA_OFFSET + READ_NOISE * rng.standard_normal(n)
        adu[dim] = exact
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def _splat(signal: np.ndarray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> None:
    """Add point weights into a 2-D array (nearest pixel; points outside are ignored)."""
    h, w = signal.shape
    r = np.round(rows).astype(np.int64)
    c = np.round(cols).astype(np.int64)
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    if ok.any():
        signal += np.bincount(r[ok] * w + c[ok], weights[ok], minlength=h * w).reshape(h, w).astype(
            signal.dtype
        )


def _local_masks(cell: Cell, shape: tuple[int, int]):
    """Body and nucleus masks in the cell's bounding box (clipped to the scene)."""
    pts = np.concatenate([cell.body, cell.nucleus])
    y0 = max(int(np.floor(pts[:, 0].min())), 0)
    x0 = max(int(np.floor(pts[:, 1].min())), 0)
    y1 = min(int(np.ceil(pts[:, 0].max())) + 1, shape[0])
    x1 = min(int(np.ceil(pts[:, 1].max())) + 1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    box = (y1 - y0, x1 - x0)
    body = np.zeros(box, bool)
    nuc = np.zeros(box, bool)
    rr, cc = draw_polygon(cell.body[:, 0] - y0, cell.body[:, 1] - x0, box)
    body[rr, cc] = True
    rr, cc = draw_polygon(cell.nucleus[:, 0] - y0, cell.nucleus[:, 1] - x0, box)
    nuc[rr, cc] = True
    return (slice(y0, y1), slice(x0, x1)), body | nuc, nuc, (y0, x0)


def _radial(cell: Cell, box_shape: tuple[int, int], origin: tuple[int, int]) -> np.ndarray:
    """Normalised elliptical radius (0 at the nucleus centre, 1 at its edge)."""
    e = cell.nucleus_ellipse
    yy = np.arange(box_shape[0])[:, None] + origin[0] - e.cy
    xx = np.arange(box_shape[1])[None, :] + origin[1] - e.cx
    u = xx * np.cos(e.angle) + yy * np.sin(e.angle)
    v = -xx * np.sin(e.angle) + yy * np.cos(e.angle)
    return np.sqrt((u / e.a) ** 2 + (v / e.b) ** 2).astype(np.float32)


def paint_cells(
    rng: np.random.Generator, scene: Scene, signal: np.ndarray, labels: np.ndarray,
    texture: np.ndarray, chromatin: np.ndarray,
) -> list[int]:
    """Paint every cell's stains into ``signal`` and its body into ``labels``.

    Args:
        rng: random generator.
        scene: the scene; cells are painted in order (later = on top).
        signal: ``(7, H, W)`` float32 stain map, modified in place.
        labels: ``(H, W)`` int32, modified in place; cell ``i`` gets label ``i + 1``.
        texture: ``(H, W)`` unit-std cytoplasm texture.
        chromatin: ``(H, W)`` unit-std chromatin texture.

    Returns:
        Indices of cells that touched the scene (painted).
    """
    shape = labels.shape
    painted = []
    # point-like stains (processes, chromocentres, granules) per channel, splatted at the end
    points: list[list[np.ndarray]] = [[] for _ in CHANNEL_NAMES]
    for i, cell in enumerate(scene.cells):
        loc = _local_masks(cell, shape)
        stains = STAINS[cell.cell_type]
        marker = MARKER_OF_TYPE[cell.cell_type]
        for ch, level in stains["process"].items():
            pts = cell.processes
            w = pts[:, 2] * level * cell.brightness * cell.marker_level
            points[_CH[ch]].append(np.stack([pts[:, 0], pts[:, 1], w], 1))
        if loc is None:
            continue
        sl, body, nuc, origin = loc
        if not body.any():
            continue
        painted.append(i)
        labels[sl][body] = i + 1
        rho = np.clip(_radial(cell, body.shape, origin), 0, 1)
        tex = texture[sl]
        chrom = chromatin[sl]
        cyto = body & ~nuc
        # Nuclear stains: DAPI dome with chromatin texture, histones with a rim.
        dome = 0.85 + 0.25 * (1 - rho**2)
        rim = 0.8 + 0.35 * rho**4
        for ch, level in stains["nucleus"].items():
            lv = level * cell.brightness * (cell.marker_level if ch == marker else 1.0)
            if ch == "DAPI":
                prof = dome * (1 + 0.22 * chrom)
            elif ch == "Histones":
                prof = rim * (1 + 0.12 * chrom)
            else:
                prof = 0.9 + 0.15 * (1 - rho) + 0.08 * tex
            signal[_CH[ch]][sl][nuc] += (lv * prof)[nuc]
        for ch, level in stains["body"].items():
            lv = level * cell.brightness * (cell.marker_level if ch == marker else 1.0)
            prof = 1 + 0.18 * tex
            signal[_CH[ch]][sl][cyto] += (lv * prof)[cyto]
        # Chromocentres: a few bright DAPI/histone spots inside the nucleus.
        ny, nx = np.nonzero(nuc)
        if ny.size:
            k = rng.integers(1, 3) if cell.cell_type == "neuron" else rng.integers(2, 6)
            pick = rng.integers(0, ny.size, k)
            amp = rng.uniform(1.5, 3.5, k) * cell.brightness
            spot = np.stack([ny[pick] + origin[0], nx[pick] + origin[1], amp], 1)
            points[_CH["DAPI"]].append(spot)
            points[_CH["Histones"]].append(spot * [1, 1, 0.4])
        # Lipofuscin granules in the perikaryon of some neurons.
        cy_, cx_ = np.nonzero(cyto)
        if cell.cell_type == "neuron" and cy_.size and rng.random() < 0.45:
            k = rng.integers(1, 5)
            pick = rng.integers(0, cy_.size, k)
            amp = rng.uniform(1.0, 3.0, k)
            granule = np.stack([cy_[pick] + origin[0], cx_[pick] + origin[1], amp], 1)
            for c in range(len(CHANNEL_NAMES)):
                points[c].append(granule * [1, 1, LIPOFUSCIN[c]])
    for c, pts_list in enumerate(points):
        if pts_list:
            pts = np.concatenate(pts_list)
            _splat(signal[c], pts[:, 0], pts[:, 1], pts[:, 2])
    return painted


def paint_vessels(rng: np.random.Generator, scene: Scene, signal: np.ndarray) -> None:
    """RECA1 on the vessel walls (two thin lines either side of the centre line)."""
    for v in scene.vessels:
        line = v.centerline
        d = np.gradient(line, axis=0)
        d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
        normal = np.stack([d[:, 1], -d[:, 0]], 1)
        for side in (-1.0, 1.0):
            jitter = rng.normal(0, 0.5, len(line))
            p = line + (side * v.half_width + jitter)[:, None] * normal
            w = 0.16 * (1 + 0.5 * rng.standard_normal(len(line))).clip(0.2, None)
            _splat(signal[_CH["RECA1"]], p[:, 0], p[:, 1], w)


def render_scene(
    rng: np.random.Generator,
    scene: Scene,
    *,
    fov_origin: tuple[float, float] | None = None,
    min_visible: int = 20,
) -> RenderedScene:
    """Render a scene into a uint16 ``(7, H, W)`` image and an instance label image.

    Args:
        rng: random generator.
        scene: layout from :func:`.layout.sample_scene`.
        fov_origin: position of the scene in the illumination field of view; random
            when None.
        min_visible: cells with fewer visible (top-most) pixels are dropped from the
            labels (their light stays in the image).

    Returns:
        :class:`RenderedScene`.
    """
    h, w = scene.height, scene.width
    n_ch = len(CHANNEL_NAMES)
    signal = np.zeros((n_ch, h, w), np.float32)
    labels = np.zeros((h, w), np.int32)
    texture = _normalised_noise(rng, (h, w), 1.2)
    chromatin = _normalised_noise(rng, (h, w), 0.8)
    paint_cells(rng, scene, signal, labels, texture, chromatin)
    paint_vessels(rng, scene, signal)

    # Tissue autofluorescence: smooth variation plus fine neuropil texture.
    tissue = 1.0 + 0.3 * _smooth_field(rng, (h, w))
    neuropil = np.clip(_normalised_noise(rng, (h, w), 1.5), -2.5, None)
    for c in range(n_ch):
        signal[c] += AUTOFLUORESCENCE[c] * tissue + NEUROPIL_TEXTURE[c] * (neuropil + 2.5) / 2.5

    # Optics: point-spread blur and out-of-focus haze; uneven illumination.
    for c in range(n_ch):
        sharp = ndi.gaussian_filter(signal[c], float(PSF_SIGMA[c]), mode="reflect")
        # two box filters ~ a Gaussian (sigma 5.3 px), at O(1) cost per pixel
        haze = ndi.uniform_filter(signal[c], HAZE_BOX, mode="reflect")
        haze = ndi.uniform_filter(haze, HAZE_BOX, mode="reflect")
        signal[c] = (1 - HAZE_FRACTION) * sharp + HAZE_FRACTION * haze
    if fov_origin is None:
        fov_origin = tuple(rng.uniform(0, max(FIELD_OF_VIEW - max(h, w), 0.0), 2))
    signal *= illumination_field(rng, (h, w), fov_origin)[None]

    # Camera: shot noise on electrons, read noise, offset, 16-bit range.
    image = camera(rng, signal * EXPOSURE[:, None, None])

    # Keep cells with enough visible pixels; renumber 1..N.
    counts = np.bincount(labels.ravel(), minlength=len(scene.cells) + 1)
    keep = np.nonzero(counts[1:] >= min_visible)[0]
    lut = np.zeros(len(scene.cells) + 1, np.int32)
    lut[keep + 1] = np.arange(1, keep.size + 1, dtype=np.int32)
    labels = lut[labels]
    cell_types = [scene.cells[i].cell_type for i in keep]
    return RenderedScene(image, labels, cell_types)
