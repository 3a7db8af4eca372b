"""DAMA / MAE self-supervised pretraining of N-channel ViT encoders.

Modules (import what you need; this package file stays light so that the CLI's
``--help`` does not load torch):

- :mod:`.masking`: ``random_mask``, ``adaptive_mask`` (per sample), ``ids_keep_from_mask``.
- :mod:`.losses`: patchify, masked reconstruction loss (norm_pix), regression target
  and Smooth-L1 feature regression.
- :mod:`.models_mae`: ``MaskedAutoencoderViT`` (timm blocks, timm key names), sizes.
- :mod:`.method_registry`: the pretraining methods (``dama``, ``dama-ema``, ``dama-rand``,
  ``mae``; ``register_method`` adds one), torch-free.
- :mod:`.dama`: ``DAMAPretrainer``, which runs the registered method it is given.
- :mod:`.dataset`, :mod:`.augment`: TIFF crop folder and the paper's augmentations.
- :mod:`.epoch_loop`, :mod:`.driver`, :mod:`.checkpoint`: training loop, driver
  (``run_pretraining``), exact-resume checkpoints.
- :mod:`.visualize`: reconstruction figures. :mod:`.slurm`: submitit submission.
- :mod:`.export`: encoder exports of a pretrainer or checkpoint (``export_checkpoint``;
  the format itself is :mod:`dama_det.encoder_export`).
- :mod:`.options`: the ``dama-det pretrain`` options.
"""
