#!/usr/bin/env python
"""Install Detectron2 into the running Python environment.

Detectron2 publishes no wheels on PyPI. This script chooses, in order:

1. An already importable ``detectron2`` is kept as it is (for example the official
   one built from source on a GPU machine), unless ``--force`` is given.
2. ``DAMA_DETECTRON2_SRC`` names an official detectron2 source tree (a directory) or a
   pip-installable URL (``git+https://github.com/facebookresearch/detectron2.git``):
   it is built with ``pip install --no-build-isolation`` (needs torch installed first,
   and a compiler; builds the C++/CUDA ops).
3. Otherwise a pure-Python wheel is rebuilt from PyPI's ``sal-detectron2==0.7.2``
   (official detectron2 sources at upstream commit a59f0563 plus trivial edits):
   the download is verified against a pinned sha256, the Python-3.10-only ``_C``
   extension and the stray top-level ``tools`` package are dropped, upstream's
   numpy-2 fixes are applied, the distribution is renamed ``detectron2``
   (version ``0.7.2+purepy``, tag ``py3-none-any``), its dependency list is corrected
   (no ``numpy<2``; ``fvcore`` and ``iopath`` added) and ``RECORD`` is regenerated.

Without ``_C`` only rotated-box ops, deformable convolution and the C++ COCO
evaluator are missing; detectron2 falls back to pycocotools for evaluation, and
ViT Mask R-CNN runs with torchvision's RoIAlign/NMS on CPU and GPU.

Usage::

    python tools/install_detectron2.py [--cache-dir DIR] [--force] [--check]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SOURCE_DIST = "sal-detectron2"
SOURCE_VERSION = "0.7.2"
SOURCE_WHEEL = "sal_detectron2-0.7.2-cp310-none-any.whl"
SOURCE_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
TARGET_VERSION = "0.7.2+purepy"
TARGET_WHEEL = f"detectron2-{TARGET_VERSION}-py3-none-any.whl"
ENV_SOURCE = "DAMA_DETECTRON2_SRC"

# (path inside the wheel, old text, new text): upstream fixes 70f45430 (numpy 2) and a
# model_zoo lookup that does not need pkg_resources (gone from setuptools >= 81).
# Each string is a verbatim line of detectron2's source, kept whole (hence noqa: E501).
SOURCE_PATCHES = [
    (
        "detectron2/layers/mask_ops.py",
        "mask = np.array(mask, copy=False)",
        "mask = np.asarray(mask)",
    ),
    (
        "detectron2/evaluation/sem_seg_evaluation.py",
        "array = np.array(Image.open(f), copy=copy, dtype=dtype)",
        "array = np.array(Image.open(f), dtype=dtype) if copy else np.asarray(Image.open(f), dtype=dtype)",  # noqa: E501
    ),
    ("detectron2/model_zoo/model_zoo.py", "import pkg_resources\n", ""),
    (
        "detectron2/model_zoo/model_zoo.py",
        'cfg_file = pkg_resources.resource_filename(\n        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )',  # noqa: E501
        'cfg_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", config_path)',  # noqa: E501
    ),
]
# Requirements as detectron2 really needs them (the source wheel pins numpy<2 and
# forgets fvcore/iopath, which its code imports).
DROP_REQUIRES = ("numpy<2", "black")
EXTRA_REQUIRES = ["fvcore<0.1.6,>=0.1.5", "iopath<0.1.10,>=0.1.7", "numpy"]


def _log(msg: str) -> None:
    print(f"[install_detectron2] {msg}", flush=True)


def detectron2_installed() -> bool:
    """Return True if an importable detectron2 with the ViT backbone exists."""
    code = "import detectron2.modeling.backbone.vit as v; v.ViT; v.SimpleFeaturePyramid"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    _log(" ".join(cmd))
    subprocess.run(cmd, check=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_source_wheel(cache_dir: Path) -> Path:
    """Download (or reuse) the pinned sal-detectron2 wheel and verify its sha256."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / SOURCE_WHEEL
    if not wheel.exists() or sha256_of(wheel) != SOURCE_SHA256:
        pip(
            "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.10",
            "--dest", str(cache_dir), f"{SOURCE_DIST}=={SOURCE_VERSION}",
        )
    digest = sha256_of(wheel)
    if digest != SOURCE_SHA256:
        raise SystemExit(
            f"error: {wheel} has sha256 {digest}, expected {SOURCE_SHA256}; refusing to install it"
        )
    return wheel


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _rewrite_metadata(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("Name:"):
            line = "Name: detectron2"
        elif line.startswith("Version:"):
            line = f"Version: {TARGET_VERSION}"
        elif line.startswith("Requires-Dist:") and any(
            line.split(":", 1)[1].strip().startswith(d) for d in DROP_REQUIRES
        ):
            continue
        out.append(line)
        if line.startswith("Requires-Python:"):
            out.extend(f"Requires-Dist: {r}" for r in EXTRA_REQUIRES)
    return "\n".join(out) + "\n"


def build_purepy_wheel(source: Path, out_dir: Path) -> Path:
    """Rebuild the sal-detectron2 wheel as a pure-Python ``detectron2`` wheel.

    Args:
        source: the verified sal-detectron2 wheel.
        out_dir: folder for the new wheel.

    Returns:
        Path of the written ``detectron2-0.7.2+purepy-py3-none-any.whl``.
    """
    old_info = f"sal_detectron2-{SOURCE_VERSION}.dist-info/"
    new_info = f"detectron2-{TARGET_VERSION}.dist-info/"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(source) as zin:
        for name in zin.namelist():
            if name.endswith(".so") or name.startswith("tools/") or name.endswith("/RECORD"):
                continue
            data = zin.read(name)
            if name.startswith(old_info):
                name = new_info + name[len(old_info):]
            files[name] = data
    for path, old, new in SOURCE_PATCHES:
        text = files[path].decode()
        if old not in text:
            raise SystemExit(f"error: patch target not found in {path}: {old!r}")
        files[path] = text.replace(old, new).encode()
    files[new_info + "METADATA"] = _rewrite_metadata(files[new_info + "METADATA"].decode()).encode()
    files[new_info + "WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: dama_det install_detectron2\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    files[new_info + "top_level.txt"] = b"detectron2\n"
    record = [_record_line(n, d) for n, d in sorted(files.items())]
    record.append(f"{new_info}RECORD,,")
    files[new_info + "RECORD"] = ("\n".join(record) + "\n").encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / TARGET_WHEEL
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for name, data in files.items():
            zout.writestr(name, data)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/detectron2"),
                        help="where the downloaded and rebuilt wheels are kept")
    parser.add_argument("--force", action="store_true",
                        help="install even when an importable detectron2 exists")
    parser.add_argument("--check", action="store_true",
                        help="only report whether detectron2 is importable (exit 1 if not)")
    args = parser.parse_args(argv)

    if args.check:
        ok = detectron2_installed()
        _log("detectron2 importable" if ok else "detectron2 missing")
        return 0 if ok else 1
    if not args.force and detectron2_installed():
        _log("detectron2 already installed; keeping it (use --force to replace)")
        return 0
    src = os.environ.get(ENV_SOURCE)
    if src:
        _log(f"building detectron2 from {ENV_SOURCE}={src}")
        pip("install", "--no-build-isolation", src)
    else:
        wheel = download_source_wheel(args.cache_dir)
        with tempfile.TemporaryDirectory() as tmp:
            target = build_purepy_wheel(wheel, Path(tmp))
            pip("install", "--force-reinstall", "--no-deps", str(target))
            pip("install", str(target))  # its (corrected) dependencies
    if not detectron2_installed():
        raise SystemExit("error: detectron2 was installed but does not import")
    _log("detectron2 ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
