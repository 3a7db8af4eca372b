"""Find the shipped YAML configs (``configs/`` of the repository) by name or path."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DamaUserError

DEFAULT_CONFIG = "mask_rcnn_dama_vit_tiny_50ep_synth7.yaml"
QUICK_CONFIG = "quick_schedules/mask_rcnn_dama_vit_instant_test.yaml"


def config_dirs() -> list[Path]:
    """Folders searched for config names, in order.

    ``$DAMA_DET_CONFIGS`` (if set), the package's own ``dama_det/configs`` (installed
    copies) and the repository's ``configs/`` (editable installs and checkouts).
    """
    package = Path(__file__).resolve().parents[1]
    dirs = [package / "configs", package.parent / "configs"]
    env = os.environ.get("DAMA_DET_CONFIGS")
    if env:
        dirs.insert(0, Path(env))
    return [d for d in dirs if d.is_dir()]


def find_config_file(name: str | os.PathLike | None) -> Path:
    """Resolve a config given as a path or as a name inside the config folders.

    Args:
        name: ``path/to/file.yaml``, or ``mask_rcnn_dama_vit_b_50ep_synth7.yaml`` /
            ``quick_schedules/...`` (the ``.yaml`` may be left out); None or "" gives
            the default (ViT-tiny on synthetic data).

    Returns:
        Absolute path of an existing file.

    Raises:
        DamaUserError: no such config.
    """
    name = str(name or DEFAULT_CONFIG)
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    candidates = [name] if name.endswith((".yaml", ".yml")) else [name, name + ".yaml"]
    for folder in config_dirs():
        for cand in candidates:
            if (folder / cand).is_file():
                return (folder / cand).resolve()
    shipped = sorted(
        str(p.relative_to(d)) for d in config_dirs() for p in d.rglob("*.yaml")
        if not p.name.startswith("Base-")
    )
    raise DamaUserError(
        f"{name}: no such config file (shipped configs: {', '.join(shipped) or 'none found'})"
    )
