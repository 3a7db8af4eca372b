"""E49's data: a copy of a cell-type crop folder keeping only some channels.

Reads ``SRC/labels.csv`` (file, cell_type, as ``dama-det data synth`` writes in
``crops/``) and writes every crop's chosen channels as ``(C', H, W)`` OME-TIFF with
their names to the same relative path under ``DST``, plus the same ``labels.csv``.
E49 keeps the two nuclear channels (DAPI, Histones), so a cell's type has to be read
from its nucleus' size, shape, texture and brightness instead of a marker channel.

    python benchmarks/transfer/e49_channel_subset.py SRC DST [CHANNEL ...]

CHANNEL: OME channel names (default: DAPI Histones).
"""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

from tqdm.auto import tqdm

from dama_det.data.tiff_io import read_tiff, write_ome_tiff


def subset_crops(src: Path, dst: Path, keep: list[str]) -> int:
    """Write the ``keep`` channels of every crop listed in ``src/labels.csv`` under ``dst``.

    Returns:
        The number of crops written.
    """
    rows = list(csv.DictReader((src / "labels.csv").open()))
    for row in tqdm(rows, desc="crops", leave=False):
        img = read_tiff(src / row["file"])
        names = img.channel_names
        missing = [k for k in keep if k not in names]
        if missing:
            raise SystemExit(f"{src / row['file']}: no channel {missing[0]!r} (has {names})")
        idx = [names.index(k) for k in keep]
        write_ome_tiff(dst / row["file"], img.image[idx].astype(img.dtype), keep, compression=None)
    shutil.copyfile(src / "labels.csv", dst / "labels.csv")
    return len(rows)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    n = subset_crops(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] or ["DAPI", "Histones"])
    print(f"wrote {n} crops to {sys.argv[2]}")
