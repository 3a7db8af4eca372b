"""Training and evaluation of the detector: config setup, dataset registration, the
``DamaTrainer`` (Detectron2 ``DefaultTrainer``), optimizer with layer-wise lr decay,
hooks, and the launcher shared by ``dama-det train`` and ``tools/train_net.py``.

Names are imported on first access, so the command line's ``--help`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DEFAULT_CONFIG": "config_files",
    "QUICK_CONFIG": "config_files",
    "find_config_file": "config_files",
    "add_train_arguments": "options",
    "TrainOptions": "options",
    "build_argument_parser": "launch",
    "launch_from_args": "launch",
    "run_training": "launch",
    "main": "launch",
    "apply_epoch_schedule": "setup",
    "apply_step_fractions": "setup",
    "fit_schedule": "setup",
    "build_cfg": "setup",
    "setup": "setup",
    "DamaTrainer": "trainer",
    "DamaCheckpointer": "checkpoint",
    "load_checkpoint_strict": "checkpoint",
    "build_dama_optimizer": "optim",
    "ValidationLossHook": "hooks",
    "register_datasets_from_cfg": "datasets",
    "ensure_synthetic_data": "datasets",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
