"""k-fold cell-type classification with a ViT initialised from pretraining exports.

- :mod:`.dataset`: folder-per-class N-channel TIFF crops.
- :mod:`.folds`: stratified k-fold splits saved to / reused from JSON.
- :mod:`.model`: timm ViT classifier (avg pooling + fc_norm), export loading.
- :mod:`.augment`: training / evaluation transforms for any channel count.
- :mod:`.finetuning`: fine-tuning (layer decay, AdamW, warm-up + cosine, mixup) and evaluation.
- :mod:`.table`: the paper's accuracy table and confusion-matrix figures.
- :mod:`.run`: the whole comparison (``dama-det classify``), resumable per fold.
"""
from .finetuning import FinetuneConfig
from .folds import load_or_create_folds, stratified_kfold
from .run import ClassifyOptions, MethodSpec, parse_method, run_classification
from .model import ViTArch, build_classifier, load_export_into

__all__ = [
    "ClassifyOptions",
    "FinetuneConfig",
    "MethodSpec",
    "ViTArch",
    "build_classifier",
    "load_export_into",
    "load_or_create_folds",
    "parse_method",
    "run_classification",
    "stratified_kfold",
]
