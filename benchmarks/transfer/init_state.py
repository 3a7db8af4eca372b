"""How far from the identity does the detector's ViT start? Random draws against an export.

    python benchmarks/transfer/init_state.py --export encoder.pth --images DSB2018/val \
        [--config quick_schedules/mask_rcnn_dama_vit_demo_cpu_dsb2018.yaml] [--seeds 3 1003]

Builds the detector's ViT (``MODEL.DAMA_VIT`` of ``--config``) as detectron2 draws it under
each seed, and the first seed's draw with ``--export`` loaded three ways: whole, only its
blocks (patch embedding and position table kept at the draw), only its patch embedding and
position table (blocks kept at the draw). These are the starting encoders of compare's
``random``, ``redraw`` and ``init`` and of ``MODEL.DAMA_VIT.ENCODER_SKIP_KEYS`` runs.

On ``--max-images`` top-left crops of ``--crop`` px (intensities scaled by the dtype
maximum, then standardised with the crops' own mean and std, as the detector standardises
with the training images'), no training, it prints for each encoder:

- the RMS of the patch embedding's output (content) and of the position table;
- per block: the std of the attention logits, the attention entropy divided by the log of
  the token count (1 = uniform attention), and the RMS of the block's update divided by
  the RMS of the stream it updates (0 = the block is the identity);
- ``out_pos_share``: the share of the output tokens' variance that is position (the mean
  over images at each token position);
- linear CKA of the output tokens with the patch embedding's output (1 = each token still
  carries its own patch's content, up to a linear map) and with the position table.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from detectron2.modeling.backbone.utils import get_abs_pos, window_partition

from dama_det.config import get_dama_cfg
from dama_det.data.coco_labels import find_image_mask_pairs
from dama_det.data.normalize import read_scaled_image
from dama_det.encoder_export.format import read_encoder_export
from dama_det.engine.config_files import find_config_file, merge_config_file
from dama_det.errors import DamaUserError
from dama_det.modeling.encoder_weights import load_encoder_into_vit
from dama_det.modeling.vit_backbone import build_dama_vit

DEFAULT_CONFIG = "quick_schedules/mask_rcnn_dama_vit_demo_cpu_dsb2018.yaml"
#: ``ENCODER_SKIP_KEYS`` of the export's halves
HALVES = {"export": [], "export blocks only": ["patch_embed.*", "pos_embed"],
          "export embed+pos only": ["blocks.*"]}


def load_crops(folder: Path, crop: int, max_images: int, channels: int) -> torch.Tensor:
    """The first ``max_images`` images of ``folder`` at least ``crop`` px on each side, as
    standardised top-left crops ``(N, C, crop, crop)``."""
    crops = []
    for image_path, _ in find_image_mask_pairs(folder):
        image = read_scaled_image(image_path, expected_channels=channels)
        if min(image.shape[-2:]) >= crop:
            crops.append(image[:, :crop, :crop])
        if len(crops) == max_images:
            break
    if not crops:
        raise DamaUserError(f"no image in {folder} is at least {crop} px on each side")
    x = torch.from_numpy(np.stack(crops))
    dims = (0, 2, 3)
    return (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True)


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA of two token sets ``(..., D1)`` and ``(..., D2)`` with the same leading
    shape: 1 when one is a rotation and scaling of the other, near 0 when unrelated."""
    a = a.reshape(-1, a.shape[-1]).double()
    b = b.reshape(-1, b.shape[-1]).double()
    a, b = a - a.mean(0), b - b.mean(0)
    return float((a.T @ b).norm() ** 2 / ((a.T @ a).norm() * (b.T @ b).norm()))


def rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt())


@torch.no_grad()
def start_statistics(vit: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """The statistics of the module docstring for detectron2 ``ViT`` ``vit`` on ``x``
    ``(N, C, H, W)``."""
    out: dict[str, float] = {}
    content = vit.patch_embed(x)  # (N, h, w, D)
    pos = get_abs_pos(vit.pos_embed, vit.pretrain_use_cls_token, content.shape[1:3])
    out["content_rms"], out["pos_rms"] = rms(content), rms(pos)
    stream = content + pos
    for i, block in enumerate(vit.blocks):
        tokens = block.norm1(stream)
        if block.window_size > 0:
            tokens, _ = window_partition(tokens, block.window_size)
        attn = block.attn
        b, h, w, _ = tokens.shape
        qkv = attn.qkv(tokens).reshape(b, h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, _ = qkv.reshape(3, b * attn.num_heads, h * w, -1).unbind(0)
        logits = (q * attn.scale) @ k.transpose(-2, -1)  # rel-pos tables start at zero
        p = logits.softmax(-1)
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
        updated = block(stream)
        out[f"block{i} attn logit std"] = float(logits.std())
        out[f"block{i} attn entropy / log n"] = float(entropy) / math.log(h * w)
        out[f"block{i} update / stream"] = rms(updated - stream) / rms(stream)
        stream = updated
    per_position = stream.mean(0) - stream.mean((0, 1, 2))
    total = stream.var(0, unbiased=False).mean() + per_position.pow(2).mean()
    out["out_pos_share"] = float(per_position.pow(2).mean() / total)
    out["cka(out, patch content)"] = linear_cka(stream, content)
    out["cka(out, position)"] = linear_cka(stream, pos.expand_as(stream))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", type=Path, help="an encoder export (dama-det export); "
                        "without it only the random draws are measured")
    parser.add_argument("--images", type=Path, required=True,
                        help="folder of image.tif + image_masks.tif pairs")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="detector config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 1003],
                        help="seeds of detectron2's draws; the export loads into the first")
    parser.add_argument("--crop", type=int, default=256, help="crop size, px")
    parser.add_argument("--max-images", type=int, default=16, help="crops measured")
    parser.add_argument("--skip", nargs="+", default=None, metavar="PATTERN",
                        help="also measure the export with these ENCODER_SKIP_KEYS patterns "
                        "kept at the draw (e.g. 'blocks.*.attn.proj.weight')")
    args = parser.parse_args()

    cfg = merge_config_file(get_dama_cfg(), find_config_file(args.config))
    channels = len(cfg.MODEL.PIXEL_MEAN)
    x = load_crops(args.images, args.crop, args.max_images, channels)
    torch.set_num_threads(1)

    def draw(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_dama_vit(cfg, channels).eval()

    rows = {f"random seed {s}": start_statistics(draw(s), x) for s in args.seeds}
    if args.export is not None:
        export, _ = read_encoder_export(args.export)  # read once, loaded into each variant
        variants = dict(HALVES)
        if args.skip:
            variants["export, --skip kept at draw"] = args.skip
        for name, skip in variants.items():
            vit = draw(args.seeds[0])
            load_encoder_into_vit(vit, export, skip=skip)
            rows[name] = start_statistics(vit, x)
    print(f"{x.shape[0]} crops of {args.crop} px from {args.images}, config {args.config}")
    names = list(rows)
    print(f"{'':30s}" + "".join(f"{n:>22s}" for n in names))
    for key in rows[names[0]]:
        print(f"{key:30s}" + "".join(f"{rows[n][key]:22.4f}" for n in names))


if __name__ == "__main__":
    try:
        main()
    except DamaUserError as exc:  # a missing file or a mismatched export: one line
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
