"""Small shared utilities: device/precision choice, atomic file writes."""
from .device import autocast_context, pick_device, resolve_amp_dtype
from .io import atomic_output, atomic_torch_save, atomic_write_bytes, atomic_write_json, load_torch_file

__all__ = [
    "autocast_context",
    "pick_device",
    "resolve_amp_dtype",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_torch_save",
    "atomic_output",
    "load_torch_file",
]
