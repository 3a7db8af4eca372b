"""The resume store ``OUT/fold_results.json``: every finished (method, fold) of a run.

A method's stored folds are reused only when they were made with the same settings
(its fingerprint); otherwise the run stops and asks for another ``--out`` or ``--restart``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DamaUserError

RESULTS_FORMAT = "dama_det.classify_results.v1"


def load_store(path: Path, restart: bool) -> dict[str, Any]:
    """The stored fold results at ``path`` (an empty store when absent or on ``--restart``).

    Raises:
        DamaUserError: an unreadable file or one of another format.
    """
    if restart or not path.exists():
        return {"format": RESULTS_FORMAT, "methods": {}}
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DamaUserError(
            f"{path}: cannot read stored fold results ({exc}); use --restart"
        ) from None
    if not isinstance(store, dict) or store.get("format") != RESULTS_FORMAT:
        raise DamaUserError(f"{path}: not a dama_det fold results file; use --restart")
    return store


def check_fingerprint(path: Path, name: str, stored: dict, current: dict) -> None:
    """Refuse stored folds of method ``name`` made with other settings than ``current``.

    Raises:
        DamaUserError: naming up to three settings that differ.
    """
    if stored == current:
        return
    diffs = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            diffs.append(f"{prefix}: {a} -> {b}")

    walk(stored, current, "")
    raise DamaUserError(
        f"{path}: method {name!r} has finished folds made with other settings "
        f"({'; '.join(diffs[:3])}); use another --out or --restart to discard them"
    )

