"""Synthetic multiplexed brain tissue: the built-in default dataset (``dama-det data synth``).

- :mod:`.dataset`: tiles, cell-centred crops and the dataset folder
  (``generate_dataset``, ``generate_crops``, ``render_tile``, ``render_crop(s)``).
- :mod:`.shapes`: the five cell types' shapes (``CELL_TYPES``).
- :mod:`.layout`: the tissue layout of a scene (cells, capillaries).
- :mod:`.render`: stains, optics and camera model (``CHANNEL_NAMES``, ``MARKER_OF_TYPE``).
- :mod:`.io`: output folders that appear complete or not at all, CSV writing.
"""
from .dataset import (
    CELL_TYPES,
    CHANNEL_NAMES,
    MARKER_OF_TYPE,
    generate_crops,
    generate_dataset,
    render_crop,
    render_crops,
    render_tile,
)

__all__ = [
    "CHANNEL_NAMES",
    "CELL_TYPES",
    "MARKER_OF_TYPE",
    "generate_crops",
    "generate_dataset",
    "render_crop",
    "render_crops",
    "render_tile",
]
