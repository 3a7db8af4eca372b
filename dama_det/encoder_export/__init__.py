"""The encoder export: what pretraining hands to detection and classification.

- :mod:`.format`: the export file (``dama_det.encoder.v1``): writing
  (``make_encoder_export``, ``save_encoder_export``), reading and validation
  (``load_encoder_export``, ``read_encoder_export``), the architecture it records
  (``ViTArch``).
- :mod:`.loading`: putting an export into a ViT: key mapping per ViT family
  (``VITDET_KEYS``, ``CLASSIFIER_KEYS``), position-embedding resampling
  (``fit_pos_embed``), the load report (``EncoderLoadReport``).
- :mod:`.sizes`: the named ViT sizes (``MODEL_SIZES``: test, mini, tiny, small, base).

Pretraining writes exports (:mod:`dama_det.pretrain.export`); detection
(:mod:`dama_det.modeling.encoder_weights`) and classification
(:mod:`dama_det.classification.model`) load them. Import from the modules: this
package file imports nothing, so option parsers can read :mod:`.sizes` (torch-free)
and ``--help`` stays fast.
"""
