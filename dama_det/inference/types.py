"""The data types prediction passes around: instances as crops, tile windows, and the
per-tile predictor protocol.

They live apart from the code that produces and consumes them (:mod:`.tiling` cuts
tiles and runs predictors, :mod:`.merge` joins their detections, :mod:`.outputs`
writes them), so those modules import the types, not each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

#: ``(x0, y0, x1, y1)`` integer box, half-open.
Box = tuple[int, int, int, int]


class Detection(NamedTuple):
    """One instance as a compact crop.

    Attributes:
        box: integer ``(x0, y0, x1, y1)``, half-open, in the coordinates of the array
            the detection belongs to (a tile, or the full image after tiling).
        mask: bool ``(y1 - y0, x1 - x0)`` mask of the instance inside ``box``.
        score: confidence in [0, 1].
    """

    box: tuple[int, int, int, int]
    mask: np.ndarray
    score: float


class TilePredictor(Protocol):
    """What the tiler needs from a model: ``(C, h, w) float32 -> list[Detection]``."""

    def __call__(self, tile: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class Tile:
    """A window of the image: rows ``y0:y1``, columns ``x0:x1`` and its grid index."""

    row: int
    col: int
    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def box(self) -> Box:
        """``(x0, y0, x1, y1)`` of the window in image coordinates."""
        return (self.x0, self.y0, self.x1, self.y1)
