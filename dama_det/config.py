"""``add_dama_config(cfg)``: every config key dama_det adds to Detectron2's defaults.

Input images are N-channel TIFFs scaled to [0, 1] (``INPUT.INTENSITY_SCALING``). By
default (``INPUT.PIXEL_STATS = "train"``) training then sets ``MODEL.PIXEL_MEAN`` /
``PIXEL_STD`` to the per-channel mean and std of the scaled training images, so the
detector sees standardised input (dark fluorescence images otherwise give tokens that
carry position more than content; BENCHMARKS.md measures it). The values are written
into the run's ``config.yaml``, so prediction uses the same ones. The channel count
everywhere is ``len(PIXEL_MEAN)``: configs list one value per channel.

The backbone keys live under ``MODEL.DAMA_VIT`` (see
``dama_det.modeling.vit_backbone.build_dama_vit_fpn_backbone``). ``MODEL.WEIGHTS``
stays Detectron2's full-model checkpoint; ``MODEL.DAMA_VIT.ENCODER_WEIGHTS`` is a
pretraining export (``dama-det export``) loaded into the ViT when the model is built.

This module imports nothing from the package (only Detectron2's ``CfgNode``): the
backbone is registered by importing :mod:`dama_det.modeling` (``dama_det.get_dama_cfg``
does both), the config helpers that need the package live where they are used
(``resolve_device`` in :mod:`dama_det.engine.setup`, ``resolve_pretrain_img_size`` in
:mod:`dama_det.modeling.vit_backbone`).
"""
from __future__ import annotations

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

DEFAULT_CHANNEL_NAMES = ["DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"]


def add_dama_config(cfg: CN) -> CN:
    """Add dama_det's keys (input handling, DAMA ViT backbone) to ``cfg`` in place.

    Args:
        cfg: a Detectron2 config from ``detectron2.config.get_cfg()``.

    Returns:
        The same ``cfg``, for chaining.
    """
    # ---- input: N-channel TIFF images ----
    cfg.INPUT.FORMAT = "N"  # images are N-channel float arrays, not BGR/RGB
    cfg.INPUT.MASK_FORMAT = "bitmask"  # instance masks as bitmaps (from COCO RLE)
    cfg.INPUT.CHANNEL_NAMES = list(DEFAULT_CHANNEL_NAMES)  # names of the input channels, in order
    cfg.INPUT.INTENSITY_SCALING = "dtype_max"  # "dtype_max" (/255, /65535), "percentile" or "none"
    cfg.INPUT.PERCENTILE_RANGE = (1.0, 99.8)  # low/high percentiles for "percentile" scaling
    cfg.INPUT.HFLIP = True  # random horizontal flip during training
    cfg.INPUT.VFLIP = True  # random vertical flip during training
    cfg.INPUT.ROT90 = True  # random 0/90/180/270 degree rotation during training
    cfg.INPUT.LSJ = CN()  # large-scale jitter (ViTDet): random resize then fixed-size crop/pad
    cfg.INPUT.LSJ.ENABLED = True  # use scale jitter + fixed-size crop instead of ResizeShortestEdge
    cfg.INPUT.LSJ.IMAGE_SIZE = 256  # side of the square training crop (pixels)
    cfg.INPUT.LSJ.SCALE_RANGE = (0.1, 2.0)  # min/max random scale (of MODE's reference size)
    cfg.INPUT.LSJ.MODE = "native"  # native: scale relative to the image's own size (cells keep the pixel size inference sees; +4 mask AP on DSB2018); fit: relative to the image fitted into IMAGE_SIZE (ViTDet)
    cfg.INPUT.PAD_VALUE = 0.0  # value used to pad images after scaling
    cfg.MODEL.PIXEL_MEAN = [0.0] * len(DEFAULT_CHANNEL_NAMES)
    cfg.MODEL.PIXEL_STD = [1.0] * len(DEFAULT_CHANNEL_NAMES)
    cfg.INPUT.PIXEL_STATS = "train"  # "train": PIXEL_MEAN/STD := per-channel mean/std of the scaled training images; "config": as given
    cfg.INPUT.PIXEL_STATS_MAX_IMAGES = 256  # with "train": at most this many training images (seeded sample) are read

    # ---- device ----
    cfg.MODEL.DEVICE = "auto"  # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1"

    # ---- backbone: ViT (Detectron2's ViTDet ViT) + SimpleFeaturePyramid ----
    v = cfg.MODEL.DAMA_VIT = CN()
    v.IMG_SIZE = 256  # detection input size; sets the relative-position table of global blocks
    v.PATCH_SIZE = 16  # ViT patch size (must equal the pretraining export's)
    v.EMBED_DIM = 768  # token width D (ViT-B 768, ViT-tiny 192)
    v.DEPTH = 12  # number of transformer blocks
    v.NUM_HEADS = 12  # attention heads per block
    v.MLP_RATIO = 4.0  # MLP hidden width / D
    v.QKV_BIAS = True  # bias in the qkv projection (timm/MAE default)
    v.DROP_PATH_RATE = 0.1  # stochastic depth, linearly increasing to this value
    v.WINDOW_SIZE = 14  # window attention size in tokens (blocks not in GLOBAL_BLOCK_INDEXES)
    v.GLOBAL_BLOCK_INDEXES = [2, 5, 8, 11]  # blocks with global attention; all others windowed
    v.USE_REL_POS = True  # decomposed relative position bias in attention (ViTDet)
    v.USE_ABS_POS = True  # absolute position embedding (loaded from pretraining)
    v.PRETRAIN_IMG_SIZE = 128  # pos_embed grid (x patch) stored in the ViT; 0 = the export's img_size
    v.PRETRAIN_USE_CLS_TOKEN = True  # pos_embed has a leading cls entry (MAE/timm exports do)
    v.ENCODER_WEIGHTS = ""  # pretraining export (.pth from `dama-det export`) loaded at build
    v.INIT_SEED = -1  # >= 0: the ViT's initial weights are drawn under this seed (heads, data order still follow SEED); -1 = from SEED's stream
    v.FROZEN_BLOCKS = 0  # frozen at build: 0 = nothing, k = the patch embedding, pos_embed and the first k blocks, -1 = the whole ViT
    v.ENCODER_SKIP_KEYS = []  # ViT keys/fnmatch patterns kept at init, not taken from ENCODER_WEIGHTS, e.g. ["pos_embed"]
    v.OUT_CHANNELS = 256  # channels of every pyramid level
    v.SCALE_FACTORS = [4.0, 2.0, 1.0, 0.5]  # pyramid scales of the stride-16 map -> p2..p5
    v.FPN_NORM = "LN"  # norm in the simple feature pyramid ("LN", "GN", "" ...)
    v.DETAIL_STEM_CHANNELS = 0  # > 0: a conv stem of this width adds image features to p2 (pixel_stem.py); 0 = off
    v.SQUARE_PAD = 0  # if > 0, pad every input to this square size (ViTDet uses 1024)
    v.LAYER_DECAY = 0.7  # layer-wise lr decay (get_vit_lr_decay_rate); 1.0 disables

    # ---- datasets: registered from COCO json files named in the config or CLI ----
    cfg.DATASETS.TRAIN_JSON = ()  # COCO json per DATASETS.TRAIN name ("" or none: pre-registered)
    cfg.DATASETS.TEST_JSON = ()  # COCO json per DATASETS.TEST name
    cfg.DATASETS.SYNTH_DIR = ""  # data for synth_train/synth_val; "" = OUTPUT_DIR/synth_data
    cfg.DATASETS.SYNTH_SEED = 0  # seed used when the synthetic data must be generated
    cfg.DATASETS.SYNTH_TRAIN_TILES = 32  # training tiles generated for synth_train
    cfg.DATASETS.SYNTH_VAL_TILES = 8  # validation tiles generated for synth_val
    cfg.DATASETS.SYNTH_TILE_SIZE = 512  # side of the generated tiles (pixels)

    # ---- solver ----
    cfg.SOLVER.OPTIMIZER = "AdamW"  # "AdamW" (ViTDet) or "SGD"
    cfg.SOLVER.BETAS = (0.9, 0.999)  # AdamW betas
    cfg.SOLVER.EPOCHS = 0  # if > 0: MAX_ITER = EPOCHS * train images / IMS_PER_BATCH (rounded up)
    cfg.SOLVER.STEP_FRACTIONS = (0.889, 0.963)  # with EPOCHS (or STEPS_FROM_FRACTIONS): lr steps as fractions of MAX_ITER
    cfg.SOLVER.STEPS_FROM_FRACTIONS = False  # with EPOCHS 0: STEPS = STEP_FRACTIONS x MAX_ITER, so a new MAX_ITER keeps its lr drops (STEPS is replaced)
    cfg.SOLVER.AMP.DTYPE = "auto"  # CUDA autocast dtype: "auto" (bf16 if supported), "bf16", "fp16"
    cfg.SOLVER.AMP.CPU_BF16 = False  # bf16 autocast when training on CPU (AVX512-BF16/AMX CPUs)

    # ---- evaluation ----
    cfg.TEST.DETECTIONS_PER_IMAGE = 500  # many cells per image: also COCO maxDets[-1]
    cfg.TEST.TILE_SIZE = 0  # `dama-det predict` sliding-window side without --tile-size; 0 = INPUT.LSJ.IMAGE_SIZE
    cfg.TEST.EVAL_EPOCHS = 0  # with SOLVER.EPOCHS: evaluate and checkpoint every this many epochs
    cfg.TEST.VAL_LOSS_PERIOD = 0  # iterations between validation-loss passes; 0 = EVAL_PERIOD
    cfg.TEST.VAL_LOSS_MAX_IMAGES = 64  # at most this many validation images per loss pass
    cfg.TEST.BEST_METRIC = "segm/AP"  # metric kept by the best checkpoint ("" disables)
    cfg.TEST.EVALUATOR = "cell"  # a name of engine/evaluators.py: "cell" (dama_det's report: faster-coco-eval, cell metrics), "coco" (detectron2's COCOEvaluator)
    return cfg


def get_dama_cfg() -> CN:
    """A fresh Detectron2 config with dama_det's keys added (building a model from it
    needs the backbone registered: ``import dama_det.modeling``)."""
    return add_dama_config(get_cfg())
