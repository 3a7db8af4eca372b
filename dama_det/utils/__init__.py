"""Small shared utilities: device/precision choice, atomic file writes."""
from .device import autocast_context, pick_device, resolve_amp_dtype
from .io import atomic_write_bytes, atomic_write_json, atomic_torch_save

__all__ = [
    "autocast_context",
    "pick_device",
    "resolve_amp_dtype",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_torch_save",
]
