"""What ``dama-det classify`` is asked to do: the compared methods and the run's options.

A method is ``random`` (random init, the baseline) or ``NAME=EXPORT.pth`` (a ViT
initialised from an encoder export); :func:`parse_method` reads one ``--method``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..encoder_export.format import ViTArch
from ..encoder_export.sizes import CLASSIFIER_POOLS, RANDOM_POS_EMBEDS
from ..errors import DamaUserError
from .finetuning import FinetuneConfig
from .table import BASELINE

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class ClassifyMethod:
    """A method to compare: a name and an encoder export (None = random init)."""

    name: str
    export_path: Path | None = None


def parse_method(text: str) -> ClassifyMethod:
    """Parse ``--method``: ``random`` or ``NAME=EXPORT.pth``.

    Raises:
        DamaUserError: malformed value or unusable name.
    """
    name, sep, path = text.partition("=")
    name = name.strip()
    if not _NAME_RE.match(name):
        raise DamaUserError(
            f"--method {text!r}: the name must be letters, digits, '.', '_', '+' or '-'"
        )
    if name == BASELINE:
        if sep:
            raise DamaUserError(f"--method {text!r}: 'random' is random init and takes no export")
        return ClassifyMethod(name)
    if not sep or not path.strip():
        raise DamaUserError(f"--method {text!r}: give NAME=EXPORT.pth (or 'random')")
    return ClassifyMethod(name, Path(path.strip()).expanduser())


@dataclass
class ClassifyOptions:
    """Everything ``dama-det classify`` needs (see the CLI for each field's meaning)."""

    out: Path
    methods: list[ClassifyMethod]
    data: Path | None = None
    folds: int = 10
    folds_file: Path | None = None
    label_fraction: float = 1.0  # share of each training fold fine-tuned on (stratified)
    seed: int = 0
    img_size: int | None = None
    arch: ViTArch | None = None
    random_pos_embed: str = "sincos"  # random init's position table: "sincos" or "trunc_normal"
    pool: str = "centre"  # what the head reads: "centre" (the central patch tokens) or "mean"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    device: str = "auto"
    amp: str = "auto"
    eval_batch_size: int = 256
    intensity_scaling: str = "dtype_max"
    percentile_range: tuple[float, float] = (1.0, 99.8)
    pixel_stats: str = "data"  # "data": standardise with the training fold's mean/std; "none"
    synth_per_class: int = 100
    synth_crop_size: int = 128
    save_models: bool = False
    restart: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.random_pos_embed not in RANDOM_POS_EMBEDS:
            raise DamaUserError(f"random_pos_embed {self.random_pos_embed!r} is not one of "
                                f"{', '.join(RANDOM_POS_EMBEDS)}")
        if not 0 < self.label_fraction <= 1:
            raise DamaUserError(f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        if self.pool not in CLASSIFIER_POOLS:
            raise DamaUserError(f"pool {self.pool!r} is not one of {', '.join(CLASSIFIER_POOLS)}")
