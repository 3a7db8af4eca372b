"""Checks of the output paths given on the command line (``--out``, ``--output-dir``).

Every subcommand checks where it will write before it starts, so that a path it cannot
write gives one ``error:`` line naming it (not a traceback half-way through the run):

- :func:`check_output_dir`: a folder that exists or can be created, and is writable;
- :func:`check_output_file`: a file name (not a folder) in such a folder;
- :func:`claim_output_dir`: moreover, a folder that holds no earlier run's outputs,
  unless the run continues them (``--resume``) or replaces them (``--overwrite``,
  which removes them first, so nothing stale is left beside the new outputs).

Nothing is created by these checks.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import DamaUserError


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(folder: Path, flag: str, named: Path) -> None:
    """Raise unless ``folder`` (missing) could be created, or (existing) written into;
    messages name ``named``, the path given on the command line."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise DamaUserError(f"{named}: cannot write {flag} there: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        where = "" if base == named.absolute() else f" (in {base})"
        raise DamaUserError(f"{named}: cannot write {flag} there: permission denied{where}")


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a writable folder.

    Args:
        path: the output folder.
        flag: the option that named it, for messages.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (nothing is created).

    Raises:
        DamaUserError: ``path`` is an existing file, a parent of it is a file, or the
            folder (or the existing parent it would be created in) is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DamaUserError(f"{path}: {flag} must be a folder, but a file of that name exists")
    _check_creatable(path, flag, path)
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Check that ``path`` names a file that can be written (atomically: its folder must
    be writable).

    Args:
        path: the output file.
        flag: the option that named it, for messages.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (nothing is created).

    Raises:
        DamaUserError: ``path`` is an existing folder, a parent of it is a file, or its
            folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise DamaUserError(f"{path}: {flag} must be a file name, but it is a folder")
    _check_creatable(path.parent, flag, path)
    return path


def glob_outputs(folder: str | os.PathLike, patterns: Sequence[str]) -> list[Path]:
    """The entries of ``folder`` that match the glob ``patterns``: those of the first
    pattern (sorted), then those of the second, ..., each once."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return list(dict.fromkeys(p for pattern in patterns for p in sorted(folder.glob(pattern))))


def claim_output_dir(
    path: str | os.PathLike,
    earlier: Iterable[Path],
    *,
    flag: str = "--out",
    resume: bool = False,
    overwrite: bool = False,
    can_resume: bool = True,
    remove: Iterable[Path] | None = None,
) -> Path:
    """Check an output folder (:func:`check_output_dir`) and that it holds no outputs of
    an earlier run, unless they are continued or replaced.

    Args:
        path: the output folder.
        earlier: the earlier run's outputs in it (files or folders; missing ones are
            ignored), e.g. from :func:`glob_outputs`.
        flag: the option that named the folder, for messages.
        resume: the run continues the earlier one (``--resume``): keep its outputs.
        overwrite: the run replaces the earlier one (``--overwrite``): remove its outputs
            now, so none is left stale beside the new ones.
        can_resume: the command has a ``--resume`` (mentioned in the message).
        remove: what ``overwrite`` removes, if more than ``earlier`` (e.g. the logs of
            the earlier run).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DamaUserError: the folder cannot be written, or it holds earlier outputs and
            neither ``resume`` nor ``overwrite`` is given.
    """
    path = check_output_dir(path, flag)
    found = [Path(p) for p in dict.fromkeys(earlier) if Path(p).exists() or Path(p).is_symlink()]
    if not found or resume:
        return path
    if not overwrite:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        how = "--resume to continue that run or --overwrite" if can_resume else "--overwrite"
        raise DamaUserError(
            f"{path}: holds the outputs of an earlier run ({found[0].name}{more}); add {how} "
            f"to replace it, or choose another {flag}"
        )
    for p in dict.fromkeys([*found, *(Path(q) for q in remove or ())]):
        if not (p.exists() or p.is_symlink()):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return path
