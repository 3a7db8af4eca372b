"""Pretraining checkpoints: atomic save, exact resume (weights, optimizer, scaler,
epoch, best loss and every process's RNG states).

Format (``torch.save`` of a dict)::

    {"format": "dama_det.pretrain.v1", "model": state_dict (DAMAPretrainer),
     "optimizer": ..., "scaler": ..., "epoch": last finished epoch (0-based),
     "best_loss": float, "args": vars(args), "model_config": {...},
     "method_config": {...}, "rng": [per-rank RNG states], "channel_names": [...]}

The RNG states are :func:`dama_det.utils.rng.rng_state`'s.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DamaUserError
from ..utils.io import atomic_torch_save, load_torch_file

CHECKPOINT_FORMAT = "dama_det.pretrain.v1"


def save_checkpoint(path: str | os.PathLike, **fields: Any) -> Path:
    """Write a checkpoint atomically (temp file + rename)."""
    return atomic_torch_save({"format": CHECKPOINT_FORMAT, **fields}, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a pretraining checkpoint on CPU.

    Raises:
        DamaUserError: missing, unreadable or not a pretraining checkpoint.
    """
    path = Path(path)
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise DamaUserError(f"{path}: not a dama-det pretraining checkpoint")
    for key in ("model", "model_config", "method_config", "epoch"):
        if key not in ckpt:
            raise DamaUserError(f"{path}: checkpoint lacks {key!r}")
    return ckpt


def check_compatible(ckpt: dict[str, Any], model_config: dict, method_config: dict,
                     path: str) -> None:
    """Refuse to resume with a different architecture or method (names the keys).

    ``weight_init`` is not compared: a resumed run continues from the saved weights.
    """
    diffs = [
        f"{k}: checkpoint {ckpt[group].get(k)!r} vs now {v!r}"
        for group, now in (("model_config", model_config), ("method_config", method_config))
        for k, v in now.items()
        if k != "weight_init" and ckpt[group].get(k) != v
    ]
    if diffs:
        raise DamaUserError(f"{path}: cannot resume with different settings ({'; '.join(diffs)})")
