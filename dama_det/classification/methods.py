"""The compared methods made ready to train: exports checked against the data, architectures.

Every export is loaded into a classifier of the data's shape before any training
starts, so a method that does not fit fails the run at once.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from ..encoder_export.format import ViTArch
from ..encoder_export.loading import EncoderLoadReport
from ..encoder_export.sizes import model_size
from .dataset import CropIndex
from .model import build_classifier, check_sincos_width, load_export_into
from .options import ClassifyMethod, ClassifyOptions


@dataclass
class PreparedMethod:
    """A method ready to train: its architecture, export and load report."""

    spec: ClassifyMethod
    arch: ViTArch
    export: dict[str, Any] | None = None
    report: EncoderLoadReport | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Architecture and export content (sha256), so a moved export still matches."""
        export = None
        if self.spec.export_path is not None:
            digest = hashlib.sha256()
            with open(self.spec.export_path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            export = {"sha256": digest.hexdigest()}
        return {"arch": asdict(self.arch), "export": export}


def resolve_img_size(opts: ClassifyOptions, index: CropIndex, exports: list[dict]) -> int:
    """``--img-size``, else the crops' common size, else the first export's, else 128."""
    if opts.img_size is not None:
        return int(opts.img_size)
    common = index.common_size()
    if common is not None:
        return common
    return int(exports[0]["img_size"]) if exports else 128


def prepare_methods(opts: ClassifyOptions, index: CropIndex, img_size: int,
                    exports: dict[str, dict[str, Any]]) -> list[PreparedMethod]:
    """Check every export, and random init's start, fits the data (before any training
    starts); pick architectures."""
    methods: list[PreparedMethod] = []
    for spec in opts.methods:
        if spec.export_path is None:
            continue
        export = exports[spec.name]
        arch = ViTArch.from_export(export)
        probe = build_classifier(arch, img_size=img_size, in_chans=index.in_chans,
                                 num_classes=len(index.class_names))
        report = load_export_into(probe, spec.export_path, export)
        methods.append(PreparedMethod(spec, arch, export, report))
    default_arch = methods[0].arch if methods else ViTArch(**model_size("tiny").encoder())
    random_arch = opts.arch or default_arch
    if opts.random_pos_embed == "sincos" and any(s.export_path is None for s in opts.methods):
        check_sincos_width(random_arch.embed_dim)  # random init's start must fit too
    by_name = {m.spec.name: m for m in methods}
    return [by_name.get(s.name) or PreparedMethod(s, random_arch) for s in opts.methods]

