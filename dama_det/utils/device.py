"""Automatic device and mixed-precision choice, shared by every training loop.

CUDA gets AMP (bf16 where supported, else fp16 with a GradScaler). CPUs with native
bf16 instructions (AVX512-BF16 or AMX-BF16, detected from the CPU's flags) run bf16
matmuls ~2-4x faster than fp32, so ``--amp auto`` picks bf16 autocast there for the
stages where it was measured at accuracy parity (pretraining, prediction,
classification; see BENCHMARKS.md) and fp32 on other CPUs. An explicit ``--amp bf16``
on a CPU without them is honoured with a warning: bf16 is emulated there, an order of
magnitude slower than fp32.
"""
from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from pathlib import Path
from typing import ContextManager, Iterator

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


#: CPU flags (as /proc/cpuinfo names them) of native bf16 arithmetic.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=8)
def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16).

    Read from the ``flags`` lines of ``cpuinfo`` (Linux); False where they cannot be
    read (other systems), so nothing is guessed from the model or the CPU's name.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def resolve_amp_dtype(amp: str, device: torch.device, *,
                      bf16_on_native_cpu: bool = False) -> torch.dtype | None:
    """Map an ``--amp`` choice to an autocast dtype (None = full precision).

    Args:
        amp: one of "auto", "bf16", "fp16", "off". "auto": bf16 on CUDA where supported,
            else fp16; on CPU bf16 when ``bf16_on_native_cpu`` and
            :func:`cpu_has_native_bf16`, else fp32.
        device: the device the model runs on.
        bf16_on_native_cpu: the calling stage's measured choice for "auto" on CPUs with
            native bf16 (True where bf16 was at accuracy parity and faster).
    """
    if amp not in AMP_CHOICES:
        raise DamaUserError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            if bf16_on_native_cpu and device.type == "cpu" and cpu_has_native_bf16():
                return torch.bfloat16
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type == "cpu":
        raise DamaUserError("--amp fp16 is for CUDA; use --amp bf16 on CPU")
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "--amp bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16 flag): "
            "bf16 is emulated here, an order of magnitude slower than fp32 (12x for a "
            "mini-ViT classifier's training step on an AVX2 CPU); --amp auto or off runs "
            "fp32", RuntimeWarning, stacklevel=2)
    return torch.bfloat16 if amp == "bf16" else torch.float16


def active_autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast computes in on ``device_type`` ("cpu", "cuda") at this point of
    the program, or None when autocast is off there."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` for ``device`` with ``dtype``, or a no-op when dtype is None.

    bf16 on CPU also restricts ``scaled_dot_product_attention`` to its math kernel
    while gradients are recorded: the CPU flash kernel's backward took 38 % of a
    ViT-tiny DAMA pretraining step, and the math kernel makes that step 1.3x faster
    (BENCHMARKS.md, "Pretraining step profile"); in fp32 both kernels are level. The
    training loops go further with :func:`explicit_attention_for_cpu_bf16`, which keeps
    timm's attention off this kernel altogether. Without gradients (prediction, probes:
    entered under ``torch.inference_mode`` / ``no_grad``) PyTorch keeps choosing, so a
    global-attention block over a large window never materialises its
    ``(tokens, tokens)`` score matrix (a 1024 px window of 8 px patches: 16384 tokens,
    0.5 GB per head in bf16, 2 GB for the mini ViT's 4 heads).
    """
    if dtype is None:
        return contextlib.nullcontext()
    autocast = torch.autocast(device_type=device.type, dtype=dtype)
    if device.type != "cpu" or dtype != torch.bfloat16:
        return autocast
    return _cpu_bf16_context(autocast)


@contextlib.contextmanager
def _cpu_bf16_context(autocast: ContextManager) -> Iterator[None]:
    """``autocast`` with scaled-dot-product attention on its math kernel when
    gradients are enabled (checked on entry)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.is_grad_enabled():
        with autocast:
            yield
        return
    with sdpa_kernel([SDPBackend.MATH]), autocast:
        yield


def explicit_attention_for_cpu_bf16(model: torch.nn.Module, device: torch.device,
                                    dtype: torch.dtype | None) -> int:
    """Switch ``model``'s timm attention modules to their explicit path when it trains in
    bf16 on CPU; elsewhere leave them on ``scaled_dot_product_attention``.

    timm's ``Attention`` computes ``softmax(q k^T / sqrt(d)) v`` either with PyTorch's
    fused kernel or explicitly (``fused_attn = False``: two matmuls and a softmax). Under
    CPU bf16 autocast the explicit path keeps both matmuls in bf16, while the fused
    kernel's math backend upcasts bf16 to fp32 on CPU and its flash backend has a slow
    backward: forward + backward of the tiny ViT decoder's attention
    ``(16, 16, 65, 32)`` took 4.8 ms explicit, 10.3 ms math, 33.4 ms flash, and a
    tiny-ViT DAMA step is 1.12x faster than on the math kernel (BENCHMARKS.md,
    "Pretraining step profile"). The explicit path materialises the ``(tokens, tokens)``
    scores, which is cheap at pretraining and fine-tuning crop sizes (65 tokens at
    128 px, patch 16).

    Args:
        model: any module; every submodule with a ``fused_attn`` attribute is switched.
        device: the training device.
        dtype: the autocast dtype (None: full precision).

    Returns:
        The number of attention modules switched (0 unless CPU and bf16).
    """
    if device.type != "cpu" or dtype != torch.bfloat16:
        return 0
    switched = 0
    for module in model.modules():
        if getattr(module, "fused_attn", None) is True:
            module.fused_attn = False
            switched += 1
    return switched
