"""dama_det: DAMA self-supervised pretraining and Detectron2 Mask R-CNN for cell
instance segmentation in multiplexed immunofluorescence images.

``add_dama_config`` (and ``get_dama_cfg``) are imported lazily, so that
``import dama_det`` and ``dama-det --help`` do not pull in torch and Detectron2;
accessing them imports ``dama_det.modeling``, which registers the
``build_dama_vit_fpn_backbone`` backbone with Detectron2.
"""
from __future__ import annotations

from typing import Any

from .errors import DamaUserError

__version__ = "0.1.0"

__all__ = ["DamaUserError", "__version__", "add_dama_config", "get_dama_cfg"]

_LAZY = {"add_dama_config": "config", "get_dama_cfg": "config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        importlib.import_module(f"{__name__}.modeling")  # registers the backbone
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
