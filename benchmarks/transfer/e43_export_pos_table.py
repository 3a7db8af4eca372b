"""E43's helper: an encoder export with its position table redrawn as timm draws a ViT's.

``python benchmarks/transfer/e43_export_pos_table.py IN.pth OUT.pth --seed S`` writes IN
with ``pos_embed`` (1, 1 + L, D) replaced by trunc-normal(std 0.02) draws (timm's and
detectron2's initialisation of a learned position embedding), everything else kept:
the one-factor change between a sin-cos and a learned-from-random position table.
"""
from __future__ import annotations

import argparse

import torch
from timm.layers import trunc_normal_

from dama_det.encoder_export.format import load_encoder_export
from dama_det.utils.io import atomic_torch_save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="encoder export to read")
    parser.add_argument("dst", help="encoder export to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    args = parser.parse_args()
    export = load_encoder_export(args.src)
    old = export["model"]["pos_embed"]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(args.seed)
    new = trunc_normal_(torch.empty_like(old), std=0.02)
    torch.random.set_rng_state(generator_state)
    export["model"]["pos_embed"] = new
    atomic_torch_save(export, args.dst)
    print(f"{args.dst}: pos_embed {tuple(old.shape)} std {old.std():.3f} -> {new.std():.4f}")


if __name__ == "__main__":
    main()
