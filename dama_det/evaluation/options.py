"""Options of ``dama-det eval``: the argparse flags and :class:`EvalOptions`, the typed
options :func:`~.eval_command.run_eval` takes (:mod:`dama_det.options`), with the
parsers of their values. Imports nothing heavy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DamaUserError
from ..options import StageOptions, stage_options


def parse_named_sources(values: list[str], option: str = "--results") -> dict[str, str]:
    """``["A=path", "B=dir"]`` -> ``{"A": "path", "B": "dir"}``; bad or duplicate names
    raise DamaUserError."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise DamaUserError(f"{option} {value!r}: expected NAME=PATH")
        name = name.strip()
        if name in out:
            raise DamaUserError(f"{option}: the name {name!r} is given twice")
        if not Path(path).exists():
            raise DamaUserError(f"{option} {value!r}: {path} does not exist")
        out[name] = path
    return out


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def _area_ranges(text: str):
    """``coco``, ``cells`` or ``name:lo:hi,name:lo:hi`` (pixels^2)."""
    if text in ("coco", "cells"):
        return text
    out = {}
    for item in text.split(","):
        parts = item.split(":")
        try:
            name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise argparse.ArgumentTypeError(
                f"area range {item!r}: expected NAME:LO:HI (pixels^2), or 'coco' / 'cells'")
        out[name] = (lo, hi)
    return out


def max_dets_list(k: int) -> tuple[int, ...]:
    """maxDets for ``--max-dets K``: 1, 10, 100 below K, then K."""
    if k < 1:
        raise DamaUserError(f"--max-dets must be >= 1, got {k}")
    return tuple(d for d in (1, 10, 100) if d < k) + (k,)


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``dama-det eval`` options to ``parser``; returns it."""
    io = parser.add_argument_group("input / output")
    io.add_argument("--gt", required=True, metavar="GT",
                    help="ground-truth COCO json (or a folder of <name>.tif + <name>_masks.tif)")
    io.add_argument("--results", required=True, nargs="+", metavar="NAME=PATH",
                    help="one per method: a COCO results json, or a folder of label images "
                    "(<name>_masks.tif / <name>_cp_masks.tif / <name>.tif; scores 1)")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder")
    io.add_argument("--no-figures", action="store_true", help="skip drawing figures")
    coco = parser.add_argument_group("COCO metrics")
    coco.add_argument("--max-dets", type=int, default=1000, metavar="K",
                      help="largest maxDets, the one AP uses; maxDets = 1, 10, 100 (below K), "
                      "K (default: %(default)s)")
    coco.add_argument("--iou-thresholds", type=_floats,
                      default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9],
                      metavar="T,T,...", help="IoU thresholds of the PR curves "
                      "(default: 0.1,...,0.9 and 0.75; AP always uses 0.5:0.95)")
    coco.add_argument("--area-ranges", type=_area_ranges, default="coco", metavar="SPEC",
                      help="'coco' (32^2, 96^2), 'cells' (16^2, 32^2) or NAME:LO:HI,... in "
                      "pixels^2 (default: %(default)s)")
    coco.add_argument("--engine", choices=("faster", "pycocotools"), default="faster",
                      help="COCOeval implementation; results agree to 1e-12 "
                      "(default: %(default)s)")
    cell = parser.add_argument_group("cell matching metrics")
    cell.add_argument("--cell-iou-thresholds", type=_floats, default=[0.5, 0.6, 0.7, 0.8, 0.9],
                      metavar="T,T,...", help="IoU thresholds of TP/FP/FN, F1, TP/(TP+FP+FN) "
                      "(default: 0.5,0.6,0.7,0.8,0.9)")
    cell.add_argument("--score-threshold", type=float, default=0.5, metavar="S",
                      help="ignore predictions scored lower in the matching metrics "
                      "(default: %(default)s)")
    return parser


def _format_floats(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _format_area_ranges(value) -> str:
    if isinstance(value, str):
        return value
    return ",".join(f"{name}:{lo:g}:{hi:g}" for name, (lo, hi) in value.items())


@stage_options("eval", arguments=add_eval_arguments)
class EvalOptions(StageOptions):
    """``dama-det eval``: methods' predictions against a ground truth (``results``:
    ``NAME=PATH`` per method, as on the command line)."""

    FORMAT = {"iou_thresholds": _format_floats, "cell_iou_thresholds": _format_floats,
              "area_ranges": _format_area_ranges}

    gt: str
    results: list[str]
    out: str
    no_figures: bool
    max_dets: int
    iou_thresholds: list[float]
    area_ranges: str | dict[str, tuple[float, float]]
    engine: str
    cell_iou_thresholds: list[float]
    score_threshold: float

    def check(self) -> None:
        """The ``results`` names and paths and ``gt`` exist, ``max_dets`` >= 1.

        Raises:
            DamaUserError: the first problem, naming the flag.
        """
        parse_named_sources(self.results)
        if not Path(self.gt).exists():
            raise DamaUserError(f"--gt {self.gt}: no such file or folder")
        max_dets_list(self.max_dets)
