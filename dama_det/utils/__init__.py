"""Small shared utilities: device/precision choice, atomic file writes, output-path checks
(imported here), and in their own modules: :mod:`.distributed` (torchrun process group,
``DistInfo``, DDP unwrapping) and :mod:`.rng` (seeding, RNG states for exact resume)."""
from .device import autocast_context, pick_device, resolve_amp_dtype
from .io import (
    atomic_output,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    is_complete_file,
    load_torch_file,
)
from .outputs import check_output_dir, check_output_file, claim_output_dir, glob_outputs

__all__ = [
    "autocast_context",
    "pick_device",
    "resolve_amp_dtype",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_torch_save",
    "atomic_output",
    "load_torch_file",
    "is_complete_file",
    "check_output_dir",
    "check_output_file",
    "claim_output_dir",
    "glob_outputs",
]
