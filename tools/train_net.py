#!/usr/bin/env python
"""Train / evaluate Mask R-CNN with the DAMA ViT backbone (Detectron2's train_net.py
for dama_det). Same code path as ``dama-det train``:

    python tools/train_net.py --config-file configs/mask_rcnn_dama_vit_b_50ep_synth7.yaml \
        --weights dama_vit_b.pth --num-gpus 8
    python tools/train_net.py --config-file CONFIG --eval-only --checkpoint model_final.pth
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout without installing: make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dama_det.engine.launch import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
