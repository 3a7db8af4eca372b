"""Every shipped detector config merges, and the CPU ones build a detector whose feature
pyramid has the strides its anchors and RoI heads expect (p2..p6 = 4..64, or p2..p5 for
the 8-px-patch config), with one anchor size per RPN level."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from dama_det import get_dama_cfg
from dama_det.engine.config_files import find_config_file, merge_config_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DETECTOR_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if "compare" not in p.parts)
CPU_CONFIGS = [p for p in DETECTOR_CONFIGS if p.parent.name == "quick_schedules"]


def _cfg(path: Path):
    cfg = get_dama_cfg()
    merge_config_file(cfg, find_config_file(str(path.relative_to(CONFIGS))))
    return cfg


def test_configs_are_found():
    names = {p.name for p in CPU_CONFIGS}
    assert {"mask_rcnn_dama_vit_demo_cpu_dsb2018.yaml",
            "mask_rcnn_dama_vit_demo_cpu_p8_dsb2018.yaml"} <= names
    assert len(DETECTOR_CONFIGS) > len(CPU_CONFIGS)


@pytest.mark.parametrize("path", DETECTOR_CONFIGS, ids=lambda p: p.name)
def test_config_merges_and_levels_match(path):
    cfg = _cfg(path)
    assert len(cfg.MODEL.ANCHOR_GENERATOR.SIZES) == len(cfg.MODEL.RPN.IN_FEATURES)
    levels = [f"p{i}" for i in range(2, 3 + len(cfg.MODEL.DAMA_VIT.SCALE_FACTORS))]
    assert set(cfg.MODEL.ROI_HEADS.IN_FEATURES) <= set(levels)
    assert set(cfg.MODEL.RPN.IN_FEATURES) <= set(levels)


@pytest.mark.parametrize("path", CPU_CONFIGS, ids=lambda p: p.name)
def test_cpu_config_backbone_strides(path):
    cfg = _cfg(path)
    channels = len(cfg.MODEL.PIXEL_MEAN)
    backbone = build_backbone(cfg, ShapeSpec(channels=channels))
    patch = cfg.MODEL.DAMA_VIT.PATCH_SIZE
    strides = {name: s.stride for name, s in backbone.output_shape().items()}
    expected = [int(patch / f) for f in cfg.MODEL.DAMA_VIT.SCALE_FACTORS]
    assert list(strides.values()) == expected + [expected[-1] * 2]  # + max-pooled top level
    assert strides["p2"] == 4
    size = 96
    with torch.no_grad():
        out = backbone(torch.randn(1, channels, size, size))
    for name, feat in out.items():
        assert feat.shape[-1] == -(-size // strides[name]), name


@pytest.mark.parametrize("path", CPU_CONFIGS, ids=lambda p: p.name)
def test_cpu_config_prediction_windows(path):
    """8-px models predict in 1024 px windows (floor study F6: +2.5 mask AP over the
    256 px training crop); 16-px ones keep the training crop (whole images cost them)."""
    from dama_det.inference.predict_command import default_tile_size
    from dama_det.inference.tiling import check_tiling

    cfg = _cfg(path)
    tile = default_tile_size(cfg)
    expected = 1024 if cfg.MODEL.DAMA_VIT.PATCH_SIZE == 8 else cfg.INPUT.LSJ.IMAGE_SIZE
    assert tile == expected
    assert tile % cfg.MODEL.DAMA_VIT.PATCH_SIZE == 0
    check_tiling(tile, tile // 4)  # the default overlap is valid


@pytest.mark.parametrize("name, max_iter", [
    ("mask_rcnn_dama_vit_demo_cpu_dsb2018.yaml", 1800),     # E15
    ("mask_rcnn_dama_vit_demo_cpu_p8_dsb2018.yaml", 3600),  # F10
])
def test_dsb2018_cpu_configs_train_the_measured_schedule(name, max_iter):
    """`dama-det train` with a DSB2018 CPU config runs the schedule BENCHMARKS.md measured
    through `dama-det compare` (same length, same lr drops, checkpoints each quarter)."""
    from dama_det.engine.setup import apply_step_fractions
    from dama_det.pipeline.stages import iteration_schedule_opts

    cfg = _cfg(CONFIGS / "quick_schedules" / name)
    apply_step_fractions(cfg)  # as `dama-det train`'s setup
    opts = dict(zip(*[iter(iteration_schedule_opts(max_iter))] * 2))
    assert cfg.SOLVER.MAX_ITER == max_iter
    assert tuple(cfg.SOLVER.STEPS) == ast.literal_eval(opts["SOLVER.STEPS"])
    assert cfg.SOLVER.CHECKPOINT_PERIOD == int(opts["SOLVER.CHECKPOINT_PERIOD"])
    assert cfg.SOLVER.WARMUP_ITERS == int(opts["SOLVER.WARMUP_ITERS"])
    assert cfg.INPUT.LSJ.MODE == "native"


@pytest.mark.parametrize("name", ["mask_rcnn_dama_vit_demo_cpu.yaml",
                                  "mask_rcnn_dama_vit_demo_cpu_dsb2018.yaml",
                                  "mask_rcnn_dama_vit_demo_cpu_p8_dsb2018.yaml"])
def test_cpu_configs_keep_their_lr_drops_for_a_new_length(name):
    """`SOLVER.MAX_ITER 1000` alone on a CPU demo config moves its lr drops to 80 % and
    95 % of the new length (fixed steps of the longer schedule would be dropped), while
    compare's schedule options still set the steps themselves."""
    from dama_det.engine.setup import apply_step_fractions, fit_schedule
    from dama_det.pipeline.stages import iteration_schedule_opts

    cfg = _cfg(CONFIGS / "quick_schedules" / name)
    cfg.merge_from_list(["SOLVER.MAX_ITER", "1000"])
    apply_step_fractions(cfg)
    fit_schedule(cfg)
    assert tuple(cfg.SOLVER.STEPS) == (800, 950)

    cfg = _cfg(CONFIGS / "quick_schedules" / name)
    cfg.merge_from_list(["SOLVER.STEP_FRACTIONS", "(0.5,)", *iteration_schedule_opts(100)])
    apply_step_fractions(cfg)
    assert tuple(cfg.SOLVER.STEPS) == (80, 95)


@pytest.mark.parametrize("name", ["mask_rcnn_dama_vit_demo_cpu_dsb2018.yaml",       # F13
                                  "mask_rcnn_dama_vit_demo_cpu_p8_dsb2018.yaml"])   # F12
def test_dsb2018_configs_train_cascade_mask_rcnn(name):
    """Both DSB2018 configs are Cascade Mask R-CNNs (floor study F12 at 8 px, F13 at 16 px):
    three box stages at IoU 0.5 / 0.6 / 0.7 with one class-agnostic box each, whose training
    step returns finite losses for every stage and the mask head."""
    from detectron2.modeling import build_model
    from detectron2.modeling.roi_heads import CascadeROIHeads
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    cfg = _cfg(CONFIGS / "quick_schedules" / name)
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    model = build_model(cfg)
    heads = model.roi_heads
    assert isinstance(heads, CascadeROIHeads) and heads.num_cascade_stages == 3
    assert [m.thresholds[1] for m in heads.proposal_matchers] == [0.5, 0.6, 0.7]
    assert all(p.bbox_pred.out_features == 4 for p in heads.box_predictor)  # class-agnostic

    size = 128
    target = Instances((size, size))
    target.gt_boxes = Boxes(torch.tensor([[30.0, 40.0, 52.0, 60.0], [80.0, 20.0, 96.0, 34.0]]))
    target.gt_classes = torch.zeros(2, dtype=torch.int64)
    masks = torch.zeros(2, size, size, dtype=torch.bool)
    masks[0, 40:60, 30:52] = masks[1, 20:34, 80:96] = True
    target.gt_masks = BitMasks(masks)
    model.train()
    with EventStorage():
        losses = model([{"image": torch.rand(1, size, size) * 255, "instances": target}])
    assert {f"loss_cls_stage{i}" for i in range(3)} | {"loss_mask"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
