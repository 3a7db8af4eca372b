"""Detector checkpoints: written atomically, loaded with a check that they fit the model.

:class:`DamaCheckpointer` is Detectron2's ``DetectionCheckpointer`` with two changes:
every file it saves (``model_*.pth``, ``model_final.pth``, ``model_best.pth`` and the
``last_checkpoint`` tag) goes to a temporary file beside the target and is renamed into
place, so a killed run never leaves a truncated checkpoint under the final name; and it
keeps the incompatible keys of its last load, which :func:`load_checkpoint_strict`
turns into one-line errors (``dama-det predict --weights``, ``dama-det train
--checkpoint``, ``--eval-only``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..errors import DamaUserError
from ..utils import atomic_torch_save, atomic_write_bytes


class DamaCheckpointer(DetectionCheckpointer):
    """A ``DetectionCheckpointer`` that saves atomically and records what its last load
    could not match (``incompatible``: fvcore's ``_IncompatibleKeys``, or None when the
    file held no model state dict)."""

    incompatible = None

    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``SAVE_DIR/<name>.pth`` (model, checkpointables, ``kwargs``) atomically
        and tag it as the last checkpoint, as fvcore's ``Checkpointer.save`` does."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        path = Path(self.save_dir) / f"{name}.pth"
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_torch_save(data, path)
        self.tag_last_checkpoint(path.name)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Write ``SAVE_DIR/last_checkpoint`` atomically."""
        atomic_write_bytes(Path(self.save_dir) / "last_checkpoint",
                           last_filename_basename.encode("utf-8"))

    def _load_model(self, checkpoint: Any):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def load_checkpoint_strict(model: torch.nn.Module, weights: str | os.PathLike,
                           flag: str = "--weights") -> None:
    """Load a Detectron2 training checkpoint, failing if it does not fit the model.

    Args:
        model: the built model (or a DDP wrapper of it).
        weights: checkpoint file (``model_final.pth`` etc.) written by training.
        flag: the option that named the file, for messages.

    Raises:
        DamaUserError: missing/unreadable file, or parameters missing from it or with
            other shapes (e.g. a checkpoint trained for another channel count, a
            pretraining encoder export, a dict of something else).
    """
    path = Path(weights)
    if not path.is_file():
        raise DamaUserError(f"{path}: weights file not found (give {flag} a checkpoint written "
                            "by `dama-det train`, e.g. OUTPUT/model_final.pth)")
    checkpointer = DamaCheckpointer(model)
    try:
        checkpointer.load(str(path), checkpointables=[])
    except Exception as exc:  # torch/pickle raise many types for a corrupt file
        raise DamaUserError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") \
            from None
    incompatible = checkpointer.incompatible
    if incompatible is None:
        raise DamaUserError(f"{path}: not a Detectron2 checkpoint (no model state dict)")
    if incompatible.incorrect_shapes:
        key, ckpt_shape, model_shape = incompatible.incorrect_shapes[0]
        raise DamaUserError(
            f"{path}: checkpoint does not fit the config: {key} has shape {tuple(ckpt_shape)} "
            f"in the checkpoint but {tuple(model_shape)} in the model "
            f"({len(incompatible.incorrect_shapes)} mismatched tensors; wrong --config-file?)"
        )
    missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
    if missing:
        raise DamaUserError(
            f"{path}: checkpoint lacks {len(missing)} model parameters (e.g. {missing[0]}); "
            "wrong --config-file or not a dama-det training checkpoint?"
        )
