"""Which images to predict: files, folders (cellpose layout) or a COCO json.

Image ids follow ``dama-det data to-coco``: the images of a folder are numbered 1..N
in the order of their names without the TIFF suffix, so predicting a folder gives the
ids of the ground truth made from that folder. A COCO json input keeps its own ids.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..data.coco_labels import MASK_SUFFIX, split_image_name
from ..data.tiff_io import read_tiff_header
from ..errors import DamaUserError


@dataclass(frozen=True)
class InputImage:
    """One image to predict.

    Attributes:
        path: the TIFF file.
        image_id: its COCO image id in the predictions json.
        stem: file name without the TIFF suffix; outputs are ``<stem>_masks.tif`` etc.
    """

    path: Path
    image_id: int
    stem: str


def _is_image(path: Path) -> bool:
    parts = split_image_name(path)
    return (parts is not None and not parts[0].endswith(MASK_SUFFIX)
            and not path.name.startswith("."))


def _folder_images(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if p.is_file() and _is_image(p)]
    if not found:
        raise DamaUserError(f"{folder}: no .tif / .ome.tif images found (label images "
                            f"*{MASK_SUFFIX}.tif are skipped)")
    return sorted(found, key=lambda p: split_image_name(p)[0])


def _coco_images(path: Path) -> list[tuple[Path, int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DamaUserError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise DamaUserError(f"{path}: a COCO json with a non-empty 'images' list is expected")
    out = []
    for k, img in enumerate(images):
        if not isinstance(img, dict) or "file_name" not in img or "id" not in img:
            raise DamaUserError(f"{path}: images[{k}] needs 'id' and 'file_name'")
        out.append((path.parent / img["file_name"], int(img["id"])))
    return out


def collect_inputs(paths: Sequence[str | os.PathLike],
                   expected_channels: int | None = None) -> list[InputImage]:
    """Expand the command line's inputs into the list of images to predict, each one
    checked from its header (readable, not truncated, the channel count), so that a bad
    image stops the command before it loads a model or writes anything.

    Args:
        paths: TIFF files, folders (their ``*.tif`` / ``*.ome.tif`` images, label images
            ``*_masks.tif`` skipped) and COCO json files (their ``images``).
        expected_channels: the channel count every image must have (None: any).

    Returns:
        The images, numbered 1, 2, ... in order (COCO json images keep their ids).

    Raises:
        DamaUserError: a missing path, an empty folder, an unsupported file, two inputs
            with the same output name, duplicate image ids, or an image that cannot be
            read or has another channel count.
    """
    entries: list[tuple[Path, int | None]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            entries.extend((f, None) for f in _folder_images(p))
        elif p.suffix.lower() == ".json":
            if not p.is_file():
                raise DamaUserError(f"{p}: no such file")
            entries.extend(_coco_images(p))
        elif not p.exists():
            raise DamaUserError(f"{p}: no such file or folder")
        elif split_image_name(p) is None:
            raise DamaUserError(f"{p}: not a TIFF image (.tif, .tiff, .ome.tif) or COCO .json")
        else:
            entries.append((p, None))
    if not entries:
        raise DamaUserError("no input images given")
    out: list[InputImage] = []
    stems: dict[str, Path] = {}
    ids: set[int] = set()
    next_id = 1
    for path, image_id in entries:
        parts = split_image_name(path)
        stem = parts[0] if parts else path.stem
        if stem in stems:
            raise DamaUserError(
                f"{path}: same output name {stem!r} as {stems[stem]}; predict them separately"
            )
        if image_id is None:
            while next_id in ids:
                next_id += 1
            image_id = next_id
        if image_id in ids:
            raise DamaUserError(f"{path}: duplicate image id {image_id}")
        stems[stem] = path
        ids.add(image_id)
        out.append(InputImage(path, image_id, stem))
    for item in out:
        read_tiff_header(item.path, expected_channels)
    return out
