"""Automatic device and mixed-precision choice, shared by every training loop.

CUDA gets AMP (bf16 where supported, else fp16 with a GradScaler); CPUs with
AVX512-BF16 / AMX run bf16 matmuls ~2x faster than fp32, so bf16 autocast is offered
on CPU too (off by default there, since small models may not gain).
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from ..errors import DamaUserError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def pick_device(requested: str | None = None) -> torch.device:
    """Return the device to run on.

    Args:
        requested: "cuda", "cuda:1", "cpu" or None/"auto" (CUDA when available).

    Returns:
        A ``torch.device``.
    """
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DamaUserError(f"device {requested!r} requested but CUDA is not available")
    return dev


def resolve_amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Map an ``--amp`` choice to an autocast dtype (None = full precision).

    Args:
        amp: one of "auto" (bf16/fp16 on CUDA, off on CPU), "bf16", "fp16", "off".
        device: the device the model runs on.
    """
    if amp not in AMP_CHOICES:
        raise DamaUserError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type == "cpu":
        raise DamaUserError("--amp fp16 is for CUDA; use --amp bf16 on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` for ``device`` with ``dtype``, or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
