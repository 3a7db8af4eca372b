"""Output folders that appear complete or not at all (for synth and crop extraction).

:func:`staged_output_dir` yields a hidden temporary folder beside the target; on
success it is renamed to the target (replacing an earlier output of the same tool),
on failure it is removed, so an interrupted run never leaves half-written data.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ...errors import DamaUserError
from ...utils import atomic_write_bytes, check_output_dir


@contextmanager
def staged_output_dir(out_dir: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Write a whole output folder atomically.

    Args:
        out_dir: the final folder. It may be missing, empty, or an earlier output of
            the same tool (recognised by the file ``marker`` in it), which is replaced.
        marker: file name (relative to the folder) that every output of the tool has.

    Yields:
        The temporary folder to write into.

    Raises:
        DamaUserError: ``out_dir`` is a file or cannot be written, or it is a non-empty
            folder that is not an earlier output of this tool (we never delete foreign
            data).
    """
    out = check_output_dir(out_dir)
    check_output_dir(out.absolute().parent)  # the new folder is staged beside it
    if out.exists() and any(out.iterdir()) and not (out / marker).is_file():
        raise DamaUserError(
            f"{out}: folder exists, is not empty and holds no {marker} from an earlier "
            "run; choose another output folder or empty it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    """Write a small CSV file atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
