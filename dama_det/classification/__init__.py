"""k-fold cell-type classification with a ViT initialised from pretraining exports.

- :mod:`.dataset`: folder-per-class N-channel TIFF crops.
- :mod:`.folds`: stratified k-fold splits saved to / reused from JSON.
- :mod:`.model`: timm ViT classifier (avg pooling + fc_norm), export loading.
- :mod:`.augment`: training / evaluation transforms for any channel count.
- :mod:`.finetuning`: fine-tuning (layer decay, AdamW, warm-up + cosine, mixup) and evaluation.
- :mod:`.table`: the paper's accuracy table and confusion-matrix figures.
- The whole comparison (``dama-det classify``), resumable per fold:
  :mod:`.options` (``ClassifyOptions``, ``--method`` parsing), :mod:`.methods` (exports
  checked against the data), :mod:`.store` (``fold_results.json``), :mod:`.fold_training`
  (one method on one fold), :mod:`.summary` (``results.json``, table, figures) and
  :mod:`.run` (``run_classification``: data, folds, the loop over methods and folds).
"""
from .finetuning import FinetuneConfig
from .folds import load_or_create_folds, stratified_kfold
from .model import ViTArch, build_classifier, load_export_into, start_from_sincos_positions
from .options import ClassifyMethod, ClassifyOptions, parse_method
from .run import run_classification

__all__ = [
    "ClassifyMethod",
    "ClassifyOptions",
    "FinetuneConfig",
    "ViTArch",
    "build_classifier",
    "load_export_into",
    "start_from_sincos_positions",
    "load_or_create_folds",
    "parse_method",
    "run_classification",
    "stratified_kfold",
]
