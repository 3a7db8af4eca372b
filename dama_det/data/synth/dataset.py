"""Synthetic multiplexed brain tissue: the built-in default dataset.

Seven channels (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1) and five cell types,
each bright in its marker: neurons (NeuN nucleus + soma), astrocytes (S100 soma and
star-shaped processes), oligodendrocytes (Olig2 nucleus), microglia (Iba1 small soma
with ramified processes) and endothelial cells (RECA1, elongated along curved
capillaries). Cell shapes are in :mod:`.shapes`, the tissue layout in
:mod:`.layout`, the stains, optics and camera model in :mod:`.render`.

Folder written by :func:`generate_dataset` (``dama-det data synth --out DIR``)::

    DIR/tiles/train/tile_0000.ome.tif      7 x S x S uint16, OME channel names
    DIR/tiles/train/tile_0000_masks.tif    instance labels (top-most cell per pixel)
    DIR/tiles/val/...
    DIR/tiles/train.json, val.json         COCO, file_name relative to DIR/tiles
    DIR/crops/<cell_type>/crop_00000.ome.tif  cell-centred 7 x 128 x 128 crops
    DIR/crops/labels.csv                   file (relative to DIR/crops), cell_type
    DIR/meta.json                          channels, types, seed, counts
    DIR/preview.png                        composite + outlines + example crops

Everything is drawn from ``numpy.random.default_rng`` seeded by ``seed`` and the
item's index, so the same seed gives byte-identical arrays and json.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DamaUserError
from ...utils import atomic_write_json
from .io import staged_output_dir, write_csv
from .layout import sample_scene
from .render import CHANNEL_NAMES, MARKER_OF_TYPE, RenderedScene, render_scene
from .shapes import CELL_TYPES

SPLITS = ("train", "val")
_CROP_MARGIN = 16  # scene margin around a crop sheet so that blur/neighbours are natural
CROP_SHEET = 3  # crops are rendered CROP_SHEET x CROP_SHEET at a time
_TILE_STREAM = {"train": 1, "val": 2}
_CROP_STREAM = 10


def _check_positive(name: str, value: int, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise DamaUserError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def render_tile(tile_size: int = 512, seed: int = 0, index: int = 0,
                split: str = "train") -> RenderedScene:
    """Render one synthetic tile.

    Args:
        tile_size: height and width (px).
        seed: dataset seed.
        index: tile index within its split.
        split: "train" or "val" (independent random streams).

    Returns:
        :class:`~dama_det.data.render.RenderedScene` with ``image``
        ``(7, tile_size, tile_size)`` uint16, ``labels`` ``(tile_size, tile_size)``
        int32 and ``cell_types``.
    """
    rng = np.random.default_rng([seed, _TILE_STREAM[split], index])
    scene = sample_scene(rng, tile_size, tile_size)
    return render_scene(rng, scene)


def render_crops(
    cell_type: str, crop_size: int = 128, seed: int = 0, sheet: int = 0
) -> list[np.ndarray]:
    """Render one sheet of crops centred on cells of the given type.

    A sheet is a scene holding a ``CROP_SHEET x CROP_SHEET`` grid of forced cells of
    ``cell_type`` spaced ``crop_size`` apart; each crop is the square around one of
    them, so the cell sits exactly at the crop centre (for even sizes, at pixel
    ``crop_size // 2``), on top of its neighbours, in tissue of the same density as
    the tiles. Crop ``i`` of a type is crop ``i % CROP_SHEET**2`` of sheet
    ``i // CROP_SHEET**2``, so crops do not depend on how many are asked for.

    Args:
        cell_type: one of :data:`CELL_TYPES`.
        crop_size: height and width (px).
        seed: dataset seed.
        sheet: sheet index within its type.

    Returns:
        ``CROP_SHEET**2`` images ``(7, crop_size, crop_size)`` uint16.
    """
    if cell_type not in CELL_TYPES:
        raise DamaUserError(f"unknown cell type {cell_type!r}; choose from {', '.join(CELL_TYPES)}")
    rng = np.random.default_rng([seed, _CROP_STREAM + CELL_TYPES.index(cell_type), sheet])
    m, g = _CROP_MARGIN, CROP_SHEET
    size = g * crop_size + 2 * m
    centre = m + np.arange(g) * crop_size + crop_size // 2
    centers = [(float(y), float(x)) for y in centre for x in centre]
    scene = sample_scene(rng, size, size, center_type=cell_type, centers=centers)
    image = render_scene(rng, scene).image
    h = crop_size // 2
    return [np.ascontiguousarray(image[:, int(y) - h:int(y) - h + crop_size,
                                       int(x) - h:int(x) - h + crop_size]) for y, x in centers]


def render_crop(cell_type: str, crop_size: int = 128, seed: int = 0, index: int = 0) -> np.ndarray:
    """Crop ``index`` of a type: ``(7, crop_size, crop_size)`` uint16 (see :func:`render_crops`)."""
    per_sheet = CROP_SHEET**2
    return render_crops(cell_type, crop_size, seed, index // per_sheet)[index % per_sheet]


def _progress(iterable, total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False)


def _write_crops(out: Path, n_per_type: int, crop_size: int, seed: int, progress: bool,
                 keep_examples: int = 0) -> tuple[list[Path], dict[str, list[np.ndarray]]]:
    from ..tiff_io import write_ome_tiff

    written: list[Path] = []
    rows: list[tuple[str, str]] = []
    examples: dict[str, list[np.ndarray]] = {t: [] for t in CELL_TYPES}
    per_sheet = CROP_SHEET**2
    n_sheets = -(-n_per_type // per_sheet)
    jobs = [(t, s) for t in CELL_TYPES for s in range(n_sheets)]
    bar = _progress(None, len(CELL_TYPES) * n_per_type, "synth crops", progress)
    for cell_type, sheet in jobs:
        crops = render_crops(cell_type, crop_size, seed, sheet)
        for j, crop in enumerate(crops[:n_per_type - sheet * per_sheet]):
            i = sheet * per_sheet + j
            rel = f"{cell_type}/crop_{i:05d}.ome.tif"
            written.append(write_ome_tiff(out / rel, crop, CHANNEL_NAMES, compression=None))
            rows.append((rel, cell_type))
            if len(examples[cell_type]) < keep_examples:
                examples[cell_type].append(crop)
            bar.update(1)
    bar.close()
    write_csv(out / "labels.csv", ("file", "cell_type"), rows)
    return written, examples


def generate_crops(
    out_dir: str | os.PathLike,
    *,
    n_per_type: int,
    crop_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Write cell-centred crops with type labels (for pretraining / classification).

    Layout: ``out_dir/<cell_type>/crop_00000.ome.tif`` (``(7, crop_size, crop_size)``
    uint16 OME-TIFF with channel names) and ``out_dir/labels.csv`` (``file`` relative
    to ``out_dir``, ``cell_type``). The folder is written atomically; an earlier crop
    folder (one with ``labels.csv``) is replaced.

    Args:
        out_dir: output folder.
        n_per_type: crops per cell type.
        crop_size: crop height and width (px).
        seed: random seed.
        progress: show a tqdm progress bar.

    Returns:
        The written crop paths (type by type, in index order).
    """
    n_per_type = _check_positive("n_per_type", n_per_type)
    crop_size = _check_positive("crop_size", crop_size, 16)
    out = Path(out_dir)
    with staged_output_dir(out, "labels.csv") as stage:
        written, _ = _write_crops(stage, n_per_type, crop_size, seed, progress)
    return [out / p.relative_to(stage) for p in written]


def _split_annotations(rendered: RenderedScene, image_id: int,
                       start_id: int) -> list[dict[str, Any]]:
    from ..coco_labels import label_image_to_annotations

    anns = label_image_to_annotations(rendered.labels, image_id, start_id=start_id)
    for ann in anns:
        ann["cell_type"] = rendered.cell_types[int(ann["label"]) - 1]
    return anns


def generate_dataset(
    out_dir: str | os.PathLike,
    *,
    n_train_tiles: int = 4,
    n_val_tiles: int = 2,
    tile_size: int = 512,
    n_crops_per_type: int = 40,
    crop_size: int = 128,
    seed: int = 0,
    progress: bool = True,
    preview: bool = True,
) -> dict[str, Any]:
    """Generate the synthetic multiplexed brain-tissue dataset (see module docstring).

    The folder is written atomically (temporary folder + rename); an earlier synth
    output (a folder with ``meta.json``) is replaced, any other non-empty folder is
    refused.

    Args:
        out_dir: output folder.
        n_train_tiles: tiles in the training split.
        n_val_tiles: tiles in the validation split (0 allowed).
        tile_size: tile height and width (px), at least 64.
        n_crops_per_type: cell-centred crops per cell type (0 allowed).
        crop_size: crop height and width (px).
        seed: random seed; the same seed gives byte-identical files.
        progress: show tqdm progress bars.
        preview: write ``preview.png``.

    Returns:
        Paths written: ``root``, ``train_images``/``train_masks``/``val_images``/
        ``val_masks`` (lists), ``train_json``, ``val_json``, ``crops`` (list),
        ``crops_csv``, ``meta``, ``preview`` (None when not written).
    """
    n_train_tiles = _check_positive("n_train_tiles", n_train_tiles)
    n_val_tiles = _check_positive("n_val_tiles", n_val_tiles, 0)
    tile_size = _check_positive("tile_size", tile_size, 64)
    n_crops_per_type = _check_positive("n_crops_per_type", n_crops_per_type, 0)
    crop_size = _check_positive("crop_size", crop_size, 16)
    from ..tiff_io import write_label_image, write_ome_tiff

    t0 = time.perf_counter()
    out = Path(out_dir)
    counts: dict[str, Any] = {"tiles": {}, "instances": {}, "instances_per_type": {}}
    first_tile: RenderedScene | None = None
    with staged_output_dir(out, "meta.json") as stage:
        result: dict[str, Any] = {"root": out}
        for split, n_tiles in (("train", n_train_tiles), ("val", n_val_tiles)):
            images, annotations, img_paths, mask_paths = [], [], [], []
            per_type = {t: 0 for t in CELL_TYPES}
            for i in _progress(range(n_tiles), n_tiles, f"synth {split} tiles", progress):
                rendered = render_tile(tile_size, seed, i, split)
                if first_tile is None:
                    first_tile = rendered
                name = f"{split}/tile_{i:04d}"
                img_paths.append(write_ome_tiff(stage / "tiles" / f"{name}.ome.tif",
                                                rendered.image, CHANNEL_NAMES, compression=None))
                mask_paths.append(write_label_image(stage / "tiles" / f"{name}_masks.tif",
                                                    rendered.labels))
                images.append({"id": i + 1, "file_name": f"{name}.ome.tif",
                               "height": tile_size, "width": tile_size,
                               "channels": len(CHANNEL_NAMES)})
                annotations += _split_annotations(rendered, i + 1, len(annotations) + 1)
                for t in rendered.cell_types:
                    per_type[t] += 1
            coco = {
                "info": {"description": f"dama_det synthetic brain tissue ({split}), seed {seed}",
                         "channel_names": list(CHANNEL_NAMES)},
                "images": images,
                "annotations": annotations,
                "categories": [{"id": 1, "name": "cell"}],
            }
            result[f"{split}_json"] = atomic_write_json(stage / "tiles" / f"{split}.json", coco,
                                                        indent=None)
            result[f"{split}_images"] = img_paths
            result[f"{split}_masks"] = mask_paths
            counts["tiles"][split] = n_tiles
            counts["instances"][split] = len(annotations)
            counts["instances_per_type"][split] = per_type

        crops, examples = [], {}
        if n_crops_per_type:
            crops, examples = _write_crops(stage / "crops", n_crops_per_type, crop_size, seed,
                                           progress, keep_examples=8)
            result["crops_csv"] = stage / "crops" / "labels.csv"
        else:
            result["crops_csv"] = None
        result["crops"] = crops
        counts["crops_per_type"] = {t: n_crops_per_type for t in CELL_TYPES}
        meta = {
            "generator": "dama_det.data.synth",
            "channel_names": list(CHANNEL_NAMES),
            "cell_types": list(CELL_TYPES),
            "marker_of_type": dict(MARKER_OF_TYPE),
            "seed": seed,
            "tile_size": tile_size,
            "crop_size": crop_size,
            "dtype": "uint16",
            "counts": counts,
        }
        result["preview"] = None
        if preview and first_tile is not None:
            from ..preview import write_dataset_preview

            result["preview"] = write_dataset_preview(
                stage / "preview.png", first_tile.image, first_tile.labels,
                first_tile.cell_types, examples if examples else {}, CHANNEL_NAMES,
            )
        result["meta"] = atomic_write_json(stage / "meta.json", meta)

    def _final(p):
        if isinstance(p, list):
            return [_final(q) for q in p]
        if isinstance(p, Path) and p.is_relative_to(stage):
            return out / p.relative_to(stage)
        return p

    result = {k: _final(v) for k, v in result.items()}
    result["seconds"] = time.perf_counter() - t0
    return result
