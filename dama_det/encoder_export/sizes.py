"""The named ViT sizes, one table for pretraining, classification and the command line.

A size fixes the encoder (width, depth, heads: what an export records and what
detection and classification build) and the pretraining decoder. This module imports
neither torch nor numpy, so option parsers can offer the names and ``--help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DamaUserError


@dataclass(frozen=True)
class ViTSize:
    """One named ViT size.

    Attributes:
        embed_dim, depth, num_heads: the encoder (token width D, blocks, heads).
        decoder_embed_dim, decoder_depth, decoder_num_heads: the MAE decoder used in
            pretraining only.
        note: what the size is for, shown in ``--help``.
    """

    embed_dim: int
    depth: int
    num_heads: int
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    note: str = ""

    def encoder(self) -> dict[str, int]:
        """``{"embed_dim", "depth", "num_heads"}`` of the encoder."""
        return {"embed_dim": self.embed_dim, "depth": self.depth, "num_heads": self.num_heads}

    def autoencoder(self) -> dict[str, int]:
        """Encoder and decoder widths, depths and heads (the ``MAEConfig`` fields)."""
        return {**self.encoder(), "decoder_embed_dim": self.decoder_embed_dim,
                "decoder_depth": self.decoder_depth, "decoder_num_heads": self.decoder_num_heads}

    def describe(self) -> str:
        """``embed_dim/depth/num_heads``, e.g. ``192/12/3``."""
        return f"{self.embed_dim}/{self.depth}/{self.num_heads}"


#: encoder width/depth/heads and decoder width/depth/heads per size name.
MODEL_SIZES: dict[str, ViTSize] = {
    "test": ViTSize(64, 2, 2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2),
    # CPU demo size (dama-det demo / compare on CPU; quick_schedules/*demo_cpu* configs).
    "mini": ViTSize(128, 4, 4, decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4,
                    note="CPU demo"),
    "tiny": ViTSize(192, 12, 3),
    "small": ViTSize(384, 12, 6),
    "base": ViTSize(768, 12, 12),
}

#: the sizes ``dama-det classify --arch`` offers for classifiers trained from scratch.
CLASSIFIER_SIZES = ("tiny", "small", "base")

#: Weight initialisations of the pretraining model (``MAEConfig.weight_init``,
#: ``dama-det pretrain --weight-init``): MAE's xavier-uniform Linear weights and xavier
#: patch embedding with each encoder block's residual output layers (``attn.proj``,
#: ``mlp.fc2``) at trunc-normal std 0.02, so that the blocks start near the identity as a
#: detectron2 draw does (the default; floor study F16: +0.7 mask AP after DAMA
#: pretraining); MAE's init as its code has it; or timm's / detectron2's ViT init (Linear
#: trunc-normal std 0.02, the patch embedding at PyTorch's conv default), which an
#: untrained detectron2 backbone has.
WEIGHT_INITS = ("xavier_small_residual", "xavier", "trunc_normal")

#: How a randomly initialised classifier's position table starts (``dama-det classify
#: --random-pos-embed``): the fixed 2-D sin-cos table an export carries (learned from
#: there; the default), or timm's trunc-normal(0.02) draw (the paper's random-init
#: baseline). With random weights the sin-cos start gave +25 points of accuracy, every
#: fold, on 500 synthetic cell crops (BENCHMARKS.md, E43).
RANDOM_POS_EMBEDS = ("sincos", "trunc_normal")
#: what the classifier pools before its head: every patch token, or the central ones
CLASSIFIER_POOLS = ("mean", "centre")


def model_size(name: str) -> ViTSize:
    """The size called ``name``.

    Raises:
        DamaUserError: unknown size name.
    """
    if name not in MODEL_SIZES:
        raise DamaUserError(f"unknown model size {name!r}; choose one of {', '.join(MODEL_SIZES)}")
    return MODEL_SIZES[name]


def sizes_help() -> str:
    """One line for ``--help``: ``test 64/2/2, mini 128/4/4 (CPU demo), ...``."""
    return ", ".join(f"{name} {size.describe()}" + (f" ({size.note})" if size.note else "")
                     for name, size in MODEL_SIZES.items())
