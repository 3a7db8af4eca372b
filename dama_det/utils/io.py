"""Atomic file writes: write to a temporary file beside the target, then rename, so a
crash never leaves a half-written checkpoint, json or image behind."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The parent folder is created; on an exception the temporary file is removed and
    ``path`` is left untouched. The file gets the usual permissions (0666 & ~umask).

    Example::

        with atomic_output("out/image.tif") as tmp:
            tifffile.imwrite(tmp, image)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_bytes(path, json.dumps(obj, indent=indent).encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temp file + rename)."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


#: Suffixes of files written as zip archives (``torch.save``, ``numpy.savez``), whose end
#: (the zip directory) shows that they were written completely.
ZIP_SUFFIXES = (".pth", ".pt", ".npz")


def is_complete_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a complete output file: a non-empty file and, for a zip-based
    format (:data:`ZIP_SUFFIXES`: ``torch.save`` checkpoints, ``.npz``), one whose zip
    directory is intact.

    Files written by :func:`atomic_output` are always complete; this also recognises the
    truncated or empty files that an interrupted non-atomic write leaves (e.g. a 0-byte
    ``model_final.pth``), without loading them.

    Args:
        path: the file.

    Returns:
        True if the file exists and looks whole.
    """
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
    except OSError:
        return False
    if path.suffix.lower() in ZIP_SUFFIXES:
        return zipfile.is_zipfile(path)
    return True


def load_torch_file(path: str | os.PathLike, what: str = "file") -> Any:
    """``torch.load`` on CPU with one-line errors for user mistakes.

    Args:
        path: the file.
        what: what the file should be, for messages ("checkpoint", "weights file").

    Raises:
        DamaUserError: the file is missing or cannot be unpickled.
    """
    import torch

    from ..errors import DamaUserError

    path = Path(path)
    if not path.is_file():
        raise DamaUserError(f"{path}: no such {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DamaUserError(f"{path}: cannot load {what} ({type(exc).__name__}: {exc})") from None
