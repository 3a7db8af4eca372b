"""E53's readout-area check: `dama-det probe --pool centre` with the centre square widened
to SIDE pixels, so 8-px and 16-px encoders can be read over the same area.

With 8-px patches the `centre` readout averages the 2 x 2 central patches, 16 x 16 px;
with 16-px patches the same readout covers 32 x 32 px. ``--side 32`` on an 8-px encoder
reads its central 4 x 4 patches, the 16-px readout's area. Every other argument goes to
``dama-det probe`` unchanged.

    python benchmarks/transfer/e53_readout_area.py --side 32 -- --weights enc.pth \
        --task celltype --data crops/ --pool centre --quiet --out probe.json
"""
from __future__ import annotations

import argparse
import sys

import torch

import dama_det.probe.features as features
from dama_det.cli import main as dama_det_main


def centre_square_mean(side: int, patch_size: int):
    """A ``centre_patch_mean`` replacement: the mean of the patches in the central
    ``side`` x ``side`` px, ``(N, gh * gw, D) -> (N, D)``."""
    k = side // patch_size
    if k < 1 or side % patch_size:
        raise SystemExit(f"--side {side} is not a multiple of the patch size {patch_size}")

    def mean(patches: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        if k > min(gh, gw):
            raise SystemExit(f"--side {side} is wider than the {gh} x {gw} patch grid")
        grid = patches.reshape(len(patches), gh, gw, patches.shape[-1])
        r, c = (gh - k) // 2, (gw - k) // 2
        return grid[:, r:r + k, c:c + k].mean(dim=(1, 2))
    return mean


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, required=True, help="centre square side (px)")
    ap.add_argument("probe_args", nargs=argparse.REMAINDER,
                    help="-- then `dama-det probe` arguments")
    a = ap.parse_args()
    args = a.probe_args[1:] if a.probe_args[:1] == ["--"] else a.probe_args
    weights = args[args.index("--weights") + 1]
    patch = int(torch.load(weights, map_location="cpu", weights_only=False)["patch_size"])
    features.centre_patch_mean = centre_square_mean(a.side, patch)
    sys.exit(dama_det_main(["probe", *args]))
