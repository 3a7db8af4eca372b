"""Find the shipped YAML configs (``configs/`` of the repository) by name or path, and
read a detector config with one-line errors for every mistake in it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DamaUserError

DEFAULT_CONFIG = "mask_rcnn_dama_vit_tiny_50ep_synth7.yaml"
QUICK_CONFIG = "quick_schedules/mask_rcnn_dama_vit_instant_test.yaml"
#: Sub-folder of the config folders that holds `dama-det compare` run descriptions,
#: not detector configs.
RUN_DESCRIPTIONS_DIR = "compare"


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
        if not p.name.startswith("Base-") and p.relative_to(d).parts[0] != RUN_DESCRIPTIONS_DIR
    )
    raise DamaUserError(
        f"{name}: no such config file (shipped configs: {', '.join(shipped) or 'none found'})"
    )


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path`` ({} when it needs Detectron2's
    unsafe loader, which then reads it itself).

    Raises:
        DamaUserError: unreadable file, a YAML syntax error (with its line and column),
            an empty file or one that holds no mapping.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DamaUserError(f"{path}: cannot read config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError:
        return {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DamaUserError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        raise DamaUserError(f"{path}: the config file is empty")
    if not isinstance(data, dict):
        raise DamaUserError(
            f"{path}: a config must map keys to values (KEY: VALUE), got a {type(data).__name__}"
        )
    return data


def check_config_chain(path: str | os.PathLike) -> None:
    """Check a config file and the ``_BASE_`` files it inherits from: each one exists,
    is valid YAML and holds a mapping.

    Raises:
        DamaUserError: naming the file (and line) at fault.
    """
    path, seen = Path(path), set()
    while True:
        if path.resolve() in seen:
            raise DamaUserError(f"{path}: _BASE_ files inherit from each other in a loop")
        seen.add(path.resolve())
        base = _read_yaml_mapping(path).get("_BASE_")
        if not base:
            return
        base = os.path.expanduser(str(base))
        if base.startswith(("http://", "https://")):
            return  # fetched by Detectron2
        base_path = Path(base) if os.path.isabs(base) else path.parent / base
        if not base_path.is_file():
            raise DamaUserError(f"{path}: _BASE_ file {base} not found ({base_path})")
        path = base_path


def merge_config_file(cfg, path: str | os.PathLike):
    """Merge the YAML config ``path`` (and its ``_BASE_`` chain) into ``cfg``.

    Args:
        cfg: a Detectron2 ``CfgNode`` with dama_det's keys (``get_dama_cfg()``).
        path: the config file.

    Returns:
        ``cfg``, merged in place.

    Raises:
        DamaUserError: one line naming the file and the line or key at fault (syntax
            error, missing ``_BASE_`` file, empty file, unknown key, wrong value type).
    """
    import yaml

    path = Path(path)
    check_config_chain(path)
    try:
        cfg.merge_from_file(str(path))
    except KeyError as exc:  # yacs: "Non-existent config key: MODEL.X"
        raise DamaUserError(f"{path}: {exc.args[0] if exc.args else exc}") from None
    except (ValueError, TypeError, AssertionError, AttributeError, yaml.YAMLError,
            OSError) as exc:
        raise DamaUserError(f"{path}: invalid config ({type(exc).__name__}: {exc})") from None
    return cfg


def check_channel_config(cfg, where: str | os.PathLike) -> int:
    """The input channel count, ``len(MODEL.PIXEL_MEAN)``, after checking that
    ``MODEL.PIXEL_STD`` lists as many values.

    Args:
        cfg: a config with dama_det keys.
        where: the config's file, for messages.

    Raises:
        DamaUserError: an empty ``PIXEL_MEAN`` or a ``PIXEL_STD`` of another length.
    """
    mean, std = list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD)
    if not mean:
        raise DamaUserError(f"{where}: MODEL.PIXEL_MEAN is empty; give one value per input "
                            "channel")
    if len(std) != len(mean):
        raise DamaUserError(
            f"{where}: MODEL.PIXEL_MEAN has {len(mean)} value(s) but MODEL.PIXEL_STD has "
            f"{len(std)}; give one value per input channel in both"
        )
    return len(mean)
