"""Detection speed on CPU: DAMA-ViT Mask R-CNN (ViT-tiny config) beside Detectron2's
stock R50-FPN Mask R-CNN, and tiled prediction time / peak memory versus image size.

Part 1, model speed (in this process): training seconds per iteration (batch 2, AdamW,
synthetic instances) and inference images per second (one image per call), both at
256 x 256 input, for the config of ``--config`` (default
``configs/mask_rcnn_dama_vit_tiny_50ep_synth7.yaml``: ViT-tiny, 192 wide, 12 blocks,
7 channels) and model_zoo ``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml``
(3 channels, one class, inputs x 255 as its pixel mean expects). Both get random
weights (the R50's frozen BatchNorm statistics set from the batch, see
:func:`calibrate_frozen_bn`) and the same synthetic cells (random disks at the same
places). The models take turns, one step each per round (load from other jobs then
falls on all alike): ``--warmup`` untimed rounds, then the median (and range) of
``--train-iters`` timed training steps and ``--infer-images`` timed predictions, in
wall and process CPU time. Inference runs at each config's detection cap and again at
``--equal-dets`` (default 100, detectron2's stock cap) for a comparison at equal
output, and ours once more with flip test-time augmentation (``dama-det predict --tta
flip``: four views, box vote; ``--no-tta`` skips it). Our model also runs under bf16
autocast where the CPU supports bf16 (``--no-bf16`` skips it): the forward pass under
``torch.autocast("cpu", bfloat16)`` as ``SOLVER.AMP.CPU_BF16`` training and ``--amp
bf16`` prediction do.

Part 2, tiled prediction (one subprocess per size, so peaks do not mix):
``dama_det.inference`` tiled prediction of synthetic 7-channel uint16 images of
1024^2, 2048^2 and 4096^2 pixels with the small instant-test model
(``configs/quick_schedules/mask_rcnn_dama_vit_instant_test.yaml``, 0.4 M parameters;
this part measures the tiler's scaling, not the model): wall time, time per megapixel,
peak RSS growth during the prediction and the peak of Python/numpy allocations
(``tracemalloc``). Time should grow with the area and memory stay nearly flat (the
label image is the only full-size array).

Usage: ``python benchmarks/detect_speed.py [--config CFG] [--skip-tiling |
--skip-model-speed] [--sizes 1024 2048 4096] [--tile 512]``; updates the sections it
ran in ``benchmarks/results/detect_speed.md`` and keeps the other sections' text.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detect_speed_report import BATCH, SIZE, merge_report, model_section, run_line, tiling_section
from detect_speed_tiling import run_tiled, tiled_child

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "mask_rcnn_dama_vit_tiny_50ep_synth7.yaml"
R50 = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"


def _threads() -> int:
    return int(os.environ.get("BENCH_THREADS", "2"))


def dama_cfg(path: Path = DEFAULT_CONFIG):
    """A DAMA-ViT Mask R-CNN config (7 channels) on CPU, merged from ``path``."""
    from dama_det import get_dama_cfg

    cfg = get_dama_cfg()
    cfg.merge_from_file(str(path))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def r50_cfg():
    """Detectron2's stock R50-FPN Mask R-CNN config, random weights, 1 class, CPU."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(R50))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    return cfg


def calibrate_frozen_bn(model, batch) -> int:
    """Set the statistics of every ``FrozenBatchNorm2d`` from one forward pass.

    The stock R50 expects ImageNet weights; with random weights its frozen BN layers
    (mean 0, var 1) let the activations grow ~10^3x through the 50 layers, so the RPN
    keeps a handful of proposals and the heads run on almost nothing. Normalising each
    layer's input by its batch statistics gives the well-scaled features a pretrained
    backbone has, without changing the architecture or its cost.

    Args:
        model: a detectron2 model (eval or train mode).
        batch: model inputs (list of dicts with ``"image"``).

    Returns:
        Number of calibrated layers.
    """
    import torch
    from detectron2.layers import FrozenBatchNorm2d

    def set_stats(module, inputs):
        x = inputs[0].detach().float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)))

    layers = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    hooks = [m.register_forward_pre_hook(set_stats) for m in layers]
    try:
        with torch.no_grad():
            model.backbone(model.preprocess_image(batch).tensor)
    finally:
        for h in hooks:
            h.remove()
    return len(layers)


def synthetic_batch(channels: int, n_images: int = BATCH, n_cells: int = 30, seed: int = 0,
                    scale: float = 1.0):
    """Model inputs with ground truth: random disks as instances.

    The disks (places, radii) depend only on ``seed``, not on ``channels``, so a 3- and
    a 7-channel model see the same cells. Pixel values lie in ``[0, 0.8 * scale]`` (ours
    take 0-1 intensities; detectron2's stock models 0-255 pixel values, ``scale=255``).

    Returns:
        list of dicts ``{"image": (C, 256, 256) float32, "instances": Instances}``.
    """
    import torch
    from detectron2.structures import BitMasks, Instances

    geometry = np.random.default_rng(seed)
    noise = np.random.default_rng(seed + 1)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    batch = []
    for _ in range(n_images):
        image = noise.random((channels, SIZE, SIZE), dtype=np.float32) * 0.2
        masks = []
        for _ in range(n_cells):
            cy, cx = geometry.uniform(10, SIZE - 10, 2)
            r = geometry.uniform(4, 10)
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            image[:, m] += 0.6
            masks.append(m)
        image = np.minimum(image, 0.8) * np.float32(scale)
        inst = Instances((SIZE, SIZE))
        bm = BitMasks(torch.from_numpy(np.stack(masks)))
        inst.gt_masks = bm
        inst.gt_boxes = bm.get_bounding_boxes()
        inst.gt_classes = torch.zeros(len(masks), dtype=torch.int64)
        batch.append({"image": torch.from_numpy(image), "instances": inst,
                      "height": SIZE, "width": SIZE})
    return batch


def _summary(seconds: list[float]) -> dict:
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
            "n": len(seconds)}


class SpeedCase:
    """One model under test: built from a config with random weights, its synthetic
    batch, optimizer and autocast dtype; times single training steps and predictions.

    Args:
        label: model name for the report.
        cfg: detectron2 config of the model (CPU).
        channels: input channels of the model.
        precision: "fp32" or "bf16 autocast" (report label).
        amp_dtype: autocast dtype of the forward passes, or None for fp32.
        pixel_scale: intensity range of the inputs (see :func:`synthetic_batch`).
    """

    def __init__(self, label: str, cfg, channels: int, precision: str, amp_dtype=None,
                 pixel_scale: float = 1.0):
        import torch
        from detectron2.modeling import build_model

        self.label, self.channels, self.precision = label, channels, precision
        self.cfg, self.amp_dtype = cfg, amp_dtype
        self.flip_tta = None  # built by start_inference(tta=True)
        self.max_dets = cfg.TEST.DETECTIONS_PER_IMAGE
        torch.manual_seed(0)
        self.model = build_model(cfg)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.batch = synthetic_batch(channels, scale=pixel_scale)
        self.frozen_bn = calibrate_frozen_bn(self.model, self.batch)
        # inference runs on these initial weights: after a few AdamW steps a classifier
        # calls nearly every box background and the heads would get nothing to do
        self.initial_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.inputs = [{"image": b["image"], "height": SIZE, "width": SIZE}
                       for b in self.batch]
        self.times: dict[str, list[tuple[float, float]]] = {}
        self.dets: dict[str, list[int]] = {}

    def _record(self, key: str, wall: float, cpu: float) -> None:
        self.times.setdefault(key, []).append((wall, cpu))

    def train_step(self, record: bool = True) -> None:
        """One training step on the batch of 2 (forward + losses under autocast, as
        ``CPUAutocastTrainer``; backward and AdamW step in fp32)."""
        import torch
        from detectron2.utils.events import EventStorage

        from dama_det.utils import autocast_context

        self.model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        with EventStorage(0), autocast_context(torch.device("cpu"), self.amp_dtype):
            losses = self.model(self.batch)
            loss = sum(losses.values())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if record:
            self._record("train", time.perf_counter() - t0, time.process_time() - c0)

    def start_inference(self, max_dets: int | None = None, tta: bool = False) -> None:
        """Back to the initial weights, eval mode, at most ``max_dets`` detections; with
        ``tta``, :meth:`predict` runs the four-flip TTA of ``dama-det predict --tta flip``."""
        import torch

        from dama_det.inference.flip_tta import FlipTTA

        self.flip_tta = FlipTTA(self.cfg, self.model) if tta else None
        self.model.load_state_dict(self.initial_state)
        self.model.eval()
        predictors = self.model.roi_heads.box_predictor  # one per stage in a cascade
        if not isinstance(predictors, torch.nn.ModuleList):
            predictors = [predictors]
        for predictor in predictors:
            predictor.test_topk_per_image = max_dets or self.max_dets

    def predict(self, i: int, key: str | None) -> None:
        """Predict input ``i % 2`` alone; record it under ``key`` (None: warm-up)."""
        import torch

        from dama_det.utils import autocast_context

        t0, c0 = time.perf_counter(), time.process_time()
        inputs = self.inputs[i % len(self.inputs)]
        with torch.inference_mode(), autocast_context(torch.device("cpu"), self.amp_dtype):
            if self.flip_tta is not None:  # boxes and (M, M) mask probabilities, unpasted
                found = len(self.flip_tta.predict(inputs))
            else:
                found = len(self.model([inputs])[0]["instances"])
        if key is not None:
            self._record(key, time.perf_counter() - t0, time.process_time() - c0)
            self.dets.setdefault(key, []).append(found)

    def result(self) -> dict:
        """``{"params_M", "label", ..., "<key>_s": wall summary, "<key>_cpu_s": CPU
        summary, "<key>_dets": median detections}`` for keys train/infer/infer_equal/
        infer_tta (those it ran)."""
        row = {"label": self.label, "channels": self.channels, "precision": self.precision,
               "params_M": self.params / 1e6, "frozen_bn": self.frozen_bn,
               "max_dets": self.max_dets}
        for key, pairs in self.times.items():
            row[f"{key}_s"] = _summary([w for w, _ in pairs])
            row[f"{key}_cpu_s"] = _summary([c for _, c in pairs])
            if key in self.dets:
                row[f"{key}_dets"] = statistics.median(self.dets[key])
        return row


def run_model_speed(args) -> tuple[list[dict], str]:
    """Time our model (fp32, and bf16 where supported) and R50-FPN, interleaved.

    Every round runs one step of each model in turn, so load from other jobs on the
    machine falls on all of them alike; ``args.warmup`` untimed rounds come first.

    Returns:
        One result row per model (:meth:`SpeedCase.result`) and a note for the report.
    """
    import torch

    from dama_det.utils.device import cpu_has_native_bf16

    cases = []
    note = ""
    for cfg_path in map(Path, args.config):
        ours = f"DAMA-ViT `{cfg_path.name}`"
        cfg = dama_cfg(cfg_path)
        channels = len(cfg.MODEL.PIXEL_MEAN)
        cases.append(SpeedCase(ours, cfg, channels, "fp32"))
        if not args.no_bf16:
            if cpu_has_native_bf16():
                cases.append(SpeedCase(ours, cfg, channels, "bf16 autocast", torch.bfloat16))
            else:
                note = ("bf16 autocast skipped: this CPU has no native bf16 "
                        "(avx512_bf16/amx_bf16).")
    cases.append(SpeedCase("Detectron2 R50-FPN Mask R-CNN 1x (stock)", r50_cfg(), 3, "fp32",
                           pixel_scale=255.0))
    rounds = args.warmup + args.train_iters
    for r in tqdm(range(rounds), desc="training rounds", leave=False):
        for case in cases:
            case.train_step(record=r >= args.warmup)
    phases = [("infer", None, cases)]
    if args.equal_dets:
        phases.append(("infer_equal", args.equal_dets, cases))
    if not args.no_tta:  # ours only: the R50 stands in for detectron2's plain inference
        phases.append(("infer_tta", None, cases[:-1]))
    for key, max_dets, timed in phases:
        for case in timed:
            case.start_inference(max_dets, tta=key == "infer_tta")
        for i in tqdm(range(args.warmup + args.infer_images), desc=f"{key} rounds",
                      leave=False):
            for case in timed:
                case.predict(i, key if i >= args.warmup else None)
    rows = [case.result() for case in cases]
    for s in rows:
        t, i = s["train_s"], s["infer_s"]
        print(f"  {s['label']} [{s['precision']}]: {s['params_M']:.1f} M params, train "
              f"{t['median']:.2f} s/iter (range {t['min']:.2f}-{t['max']:.2f}; CPU "
              f"{s['train_cpu_s']['median']:.2f} s), inference {1 / i['median']:.2f} img/s "
              f"({i['median']:.2f} s/img, range {i['min']:.2f}-{i['max']:.2f}), "
              f"{s['infer_dets']:.0f} dets/img", flush=True)
        if "infer_equal_s" in s:
            print(f"    at <= {args.equal_dets} dets/img: "
                  f"{1 / s['infer_equal_s']['median']:.2f} img/s "
                  f"({s['infer_equal_dets']:.0f} dets/img)", flush=True)
        if "infer_tta_s" in s:
            print(f"    with flip TTA: {1 / s['infer_tta_s']['median']:.2f} img/s, "
                  f"{s['infer_tta_s']['median'] / i['median']:.2f}x the time per image "
                  f"({s['infer_tta_dets']:.0f} dets/img)", flush=True)
    return rows, note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    part = ap.add_argument_group("model speed (part 1)")
    part.add_argument("--config", type=Path, nargs="+", default=[DEFAULT_CONFIG],
                      help="our models' configs, each timed in fp32 (and bf16) beside "
                      "R50-FPN; channels = len(MODEL.PIXEL_MEAN) (default: %(default)s)")
    part.add_argument("--train-iters", type=int, default=3, help="timed training steps")
    part.add_argument("--infer-images", type=int, default=4, help="timed predictions")
    part.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    part.add_argument("--no-bf16", action="store_true",
                      help="skip the bf16-autocast run of our model")
    part.add_argument("--equal-dets", type=int, default=100,
                      help="also time inference with at most this many detections per image "
                      "for every model (0: skip; default: detectron2's stock cap)")
    part.add_argument("--no-tta", action="store_true",
                      help="skip timing our model with flip test-time augmentation "
                      "(dama-det predict --tta flip)")
    part.add_argument("--skip-model-speed", action="store_true",
                      help="run only part 2; keep the report's model-speed section")
    tiling = ap.add_argument_group("tiled prediction (part 2)")
    tiling.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    tiling.add_argument("--tile", type=int, default=512)
    tiling.add_argument("--overlap", type=int, default=64)
    tiling.add_argument("--score", type=float, default=0.5)
    tiling.add_argument("--glibc-default", action="store_true",
                        help="keep glibc's dynamic mmap threshold in the tiled runs (RSS then "
                        "also shows heap fragmentation from torch's freed activations)")
    tiling.add_argument("--skip-tiling", action="store_true",
                        help="run only part 1; keep the report's tiled-prediction section")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "detect_speed.md")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(tiled_child(args.child, args.tile, args.overlap, args.score)))
        return 0
    if args.skip_model_speed and args.skip_tiling:
        ap.error("--skip-model-speed and --skip-tiling leave nothing to run")
    missing = [str(c) for c in args.config if not c.is_file()]
    if not args.skip_model_speed and missing:
        ap.error(f"--config {missing[0]}: no such file")
    if min(args.train_iters, args.infer_images) < 1 or args.warmup < 0:
        ap.error("--train-iters and --infer-images must be >= 1, --warmup >= 0")

    import torch

    torch.set_num_threads(_threads())
    start = time.perf_counter()
    sections = {}
    if not args.skip_model_speed:
        load0 = os.getloadavg()
        print(f"model speed: {' '.join(map(str, args.config))}, "
              f"load average {load0[0]:.1f}", flush=True)
        rows, note = run_model_speed(args)
        run = run_line(load0, os.getloadavg(), _threads())
        sections["model"] = model_section(rows, note, run, args)
        r50 = rows[-1]
        for ours in rows[:-1]:
            print(f"  ratio {ours['label']} [{ours['precision']}] / R50: train time "
                  f"{ours['train_s']['median'] / r50['train_s']['median']:.2f}x, inference "
                  f"throughput {r50['infer_s']['median'] / ours['infer_s']['median']:.2f}x",
                  flush=True)
        print(f"  load average now {os.getloadavg()[0]:.1f}", flush=True)
    if not args.skip_tiling:
        load0 = os.getloadavg()
        print(f"tiled prediction (instant-test model), load average {load0[0]:.1f}", flush=True)
        tiled = run_tiled(args.sizes, args.tile, args.overlap, args.score,
                          fixed_mmap_threshold=not args.glibc_default)
        run = run_line(load0, os.getloadavg(), _threads())
        sections["tiling"] = tiling_section(tiled, run, args)
    merge_report(args.out, sections)
    print(f"total {time.perf_counter() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
