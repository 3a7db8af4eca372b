"""Detection speed on CPU: DAMA-ViT Mask R-CNN (ViT-tiny config) beside Detectron2's
stock R50-FPN Mask R-CNN, and tiled prediction time / peak memory versus image size.

Part 1, model speed (in this process): training seconds per iteration (batch 2, AdamW,
synthetic instances) and inference images per second (one image per call), both at
256 x 256 input, for the config of ``--config`` (default
``configs/mask_rcnn_dama_vit_tiny_50ep_synth7.yaml``: ViT-tiny, 192 wide, 12 blocks,
7 channels) and model_zoo ``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml``
(3 channels, one class). Both get random weights and the same synthetic cells (random
disks at the same places), run ``--warmup`` untimed iterations, then report the median
(and range) of ``--train-iters`` timed training steps and ``--infer-images`` timed
predictions. Our model also runs under bf16 autocast where the CPU supports bf16
(``--no-bf16`` skips it): the forward pass under ``torch.autocast("cpu", bfloat16)``
as ``SOLVER.AMP.CPU_BF16`` training and ``--amp bf16`` prediction do.

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
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from detect_speed_report import BATCH, SIZE, merge_report, model_section, run_line, tiling_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "mask_rcnn_dama_vit_tiny_50ep_synth7.yaml"
TILING_CONFIG = REPO / "configs" / "quick_schedules" / "mask_rcnn_dama_vit_instant_test.yaml"
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


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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


def model_speed(cfg, channels: int, train_iters: int, infer_images: int, warmup: int = 1,
                amp_dtype=None, pixel_scale: float = 1.0, equal_dets: int = 0) -> dict:
    """Training s/iter (batch 2) and inference images/s of the model of ``cfg``.

    Args:
        cfg: detectron2 config of the model (CPU).
        channels: input channels of the model.
        train_iters: timed training steps (after ``warmup`` untimed ones).
        infer_images: timed single-image predictions (after ``warmup`` untimed ones).
        warmup: untimed iterations before each timed phase.
        amp_dtype: autocast dtype of the forward passes, or None for fp32.
        pixel_scale: intensity range of the inputs (see :func:`synthetic_batch`).
        equal_dets: if > 0, inference is also timed with at most this many detections
            per image (the mask head's work), for a comparison at equal output.

    Returns:
        ``{"params_M", "frozen_bn", "train_s", "infer_s", "dets_per_image"}`` and, with
        ``equal_dets``, ``"infer_equal_s"`` and ``"dets_equal"``; the ``*_s`` are
        summaries ``{"median", "min", "max", "n"}`` in seconds.
    """
    import torch
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from dama_det.utils import autocast_context

    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    batch = synthetic_batch(channels, scale=pixel_scale)
    frozen_bn = calibrate_frozen_bn(model, batch)
    # inference runs on these initial weights: after a few AdamW steps a classifier
    # calls nearly every box background and the heads would get nothing to do
    initial_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> float:
        t0 = time.perf_counter()
        with autocast_context(device, amp_dtype):  # forward + losses, as CPUAutocastTrainer
            losses = model(batch)
            loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    with EventStorage(0):  # the losses log to an event storage
        for _ in range(warmup):
            step()
        train_s = [step() for _ in range(train_iters)]

    model.load_state_dict(initial_state)
    model.eval()
    inputs = [{"image": b["image"], "height": SIZE, "width": SIZE} for b in batch]

    def infer() -> tuple[dict, float]:
        seconds, dets = [], []
        with torch.inference_mode(), autocast_context(device, amp_dtype):
            for i in range(warmup + infer_images):
                t0 = time.perf_counter()
                out = model([inputs[i % len(inputs)]])
                if i >= warmup:
                    seconds.append(time.perf_counter() - t0)
                    dets.append(len(out[0]["instances"]))
        return _summary(seconds), statistics.median(dets)

    result = {"params_M": params / 1e6, "frozen_bn": frozen_bn, "train_s": _summary(train_s)}
    result["infer_s"], result["dets_per_image"] = infer()
    if equal_dets > 0:
        model.roi_heads.box_predictor.test_topk_per_image = equal_dets
        result["infer_equal_s"], result["dets_equal"] = infer()
    return result


def run_model_speed(args) -> tuple[list[dict], str]:
    """Time our model (fp32, and bf16 where cheap) and R50-FPN; returns rows and notes."""
    import torch

    cfg_path = Path(args.config)
    ours = f"DAMA-ViT `{cfg_path.name}`"
    # (label, config, channels, autocast dtype, precision, pixel scale)
    jobs = [(ours, lambda: dama_cfg(cfg_path), 7, None, "fp32", 1.0)]
    note = ""
    if not args.no_bf16:
        if cpu_supports_bf16():
            jobs.append((ours, lambda: dama_cfg(cfg_path), 7, torch.bfloat16, "bf16 autocast",
                         1.0))
        else:
            note = "bf16 autocast skipped: this CPU has no native bf16 (avx512_bf16/amx_bf16)."
    jobs.append(("Detectron2 R50-FPN Mask R-CNN 1x (stock)", r50_cfg, 3, None, "fp32", 255.0))
    rows = []
    for label, make_cfg, channels, dtype, precision, scale in jobs:
        cfg = make_cfg()
        s = model_speed(cfg, channels, args.train_iters, args.infer_images, args.warmup, dtype,
                        scale, args.equal_dets)
        s.update(label=label, channels=channels, precision=precision,
                 max_dets=cfg.TEST.DETECTIONS_PER_IMAGE)
        rows.append(s)
        t, i = s["train_s"], s["infer_s"]
        print(f"  {label} [{precision}]: {s['params_M']:.1f} M params, train "
              f"{t['median']:.2f} s/iter (range {t['min']:.2f}-{t['max']:.2f}), inference "
              f"{1 / i['median']:.2f} img/s ({i['median']:.2f} s/img, range "
              f"{i['min']:.2f}-{i['max']:.2f}), {s['dets_per_image']:.0f} dets/img", flush=True)
        if "infer_equal_s" in s:
            print(f"    at <= {args.equal_dets} dets/img: {1 / s['infer_equal_s']['median']:.2f} "
                  f"img/s ({s['dets_equal']:.0f} dets/img)", flush=True)
    return rows, note


# ----------------------------------------------------------------- tiled prediction


def synthetic_large_image(size: int, channels: int = 7, seed: int = 0) -> np.ndarray:
    """uint16 ``(C, size, size)``: noise plus one bright disk per ~40 x 40 pixels."""
    import cv2

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 8000, (channels, size, size), dtype=np.uint16)
    n = size * size // 1600
    centres = rng.integers(0, size, (n, 2))
    radii = rng.integers(4, 11, n)
    for c in range(channels):
        plane = image[c]
        for (y, x), r in zip(centres, radii):
            cv2.circle(plane, (int(x), int(y)), int(r), 50000, -1)
    return image


class RssSampler:
    """Peak resident memory of this process, sampled from /proc/self/statm in a thread."""

    def __init__(self, interval: float = 0.01):
        import threading

        self.interval = interval
        self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        """Resident set size in bytes (0 where /proc is missing)."""
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __enter__(self) -> "RssSampler":
        self.start_rss = self.current()
        self.peak = self.start_rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def tiled_child(size: int, tile: int, overlap: int, score: float) -> dict:
    """Run in a subprocess: time and memory of one tiled prediction."""
    import torch
    import tracemalloc

    from dama_det.inference.pipeline import PredictOptions, predict_one
    from dama_det.inference.predictor import MaskRCNNTilePredictor
    from dama_det.inference.tiling import make_tile_grid

    torch.set_num_threads(_threads())
    torch.manual_seed(0)
    pred = MaskRCNNTilePredictor.from_config(dama_cfg(TILING_CONFIG), None, device="cpu",
                                             amp="off", score_thresh=score, tile_size=tile)
    image = synthetic_large_image(size)
    opts = PredictOptions(num_channels=7, tile_size=tile, overlap=overlap, batch_size=1,
                          progress=False)
    # warm-up on one window so allocator/one-time costs are not charged to a size
    pred(np.zeros((7, tile, tile), np.float32))
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    tracemalloc.start()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        labels, dets = predict_one(image, np.dtype(np.uint16), pred, opts)
        seconds = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cpu = time.process_time() - cpu0
    maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_tiles = len(make_tile_grid(size, size, tile, overlap))
    return {
        "size": size, "tiles": n_tiles, "instances": len(dets), "seconds": seconds,
        "cpu_seconds": cpu, "s_per_mpx": seconds / (size * size / 1e6),
        "cpu_s_per_mpx": cpu / (size * size / 1e6), "s_per_tile": seconds / n_tiles,
        "rss_growth_mb": (rss.peak - rss.start_rss) / 2**20,
        "maxrss_delta_mb": (maxrss1 - maxrss0) / 1024,
        "tracemalloc_peak_mb": py_peak / 2**20,
        "image_mb": image.nbytes / 2**20, "labels_mb": labels.nbytes / 2**20,
    }


def run_tiled(sizes, tile: int, overlap: int, score: float,
              fixed_mmap_threshold: bool = True) -> list[dict]:
    rows = []
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--tile", str(tile),
               "--overlap", str(overlap), "--score", str(score)]
        env = dict(os.environ)
        if fixed_mmap_threshold:
            # glibc raises its mmap threshold after large frees, so torch's freed
            # activations land on the fragmenting heap and RSS creeps up with the number
            # of windows; a fixed threshold shows the tiler's own memory
            env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"child for {size} failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  {size:>5}^2: {row['tiles']:>3} tiles, {row['instances']:>6} instances, "
              f"{row['seconds']:6.1f} s wall ({row['s_per_mpx']:.1f} s/Mpx, "
              f"{row['s_per_tile']:.2f} s/tile), {row['cpu_seconds']:6.1f} s CPU "
              f"({row['cpu_s_per_mpx']:.1f} CPU s/Mpx); peak RSS growth "
              f"{row['rss_growth_mb']:.0f} MB (max-RSS delta {row['maxrss_delta_mb']:.0f} MB), "
              f"tracemalloc peak {row['tracemalloc_peak_mb']:.0f} MB (input image "
              f"{row['image_mb']:.0f} MB, label image {row['labels_mb']:.0f} MB)", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    part = ap.add_argument_group("model speed (part 1)")
    part.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                      help="our model's config (default: %(default)s)")
    part.add_argument("--train-iters", type=int, default=3, help="timed training steps")
    part.add_argument("--infer-images", type=int, default=4, help="timed predictions")
    part.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    part.add_argument("--no-bf16", action="store_true",
                      help="skip the bf16-autocast run of our model")
    part.add_argument("--equal-dets", type=int, default=100,
                      help="also time inference with at most this many detections per image "
                      "for every model (0: skip; default: detectron2's stock cap)")
    part.add_argument("--skip-model-speed", action="store_true")
    tiling = ap.add_argument_group("tiled prediction (part 2)")
    tiling.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    tiling.add_argument("--tile", type=int, default=512)
    tiling.add_argument("--overlap", type=int, default=64)
    tiling.add_argument("--score", type=float, default=0.5)
    tiling.add_argument("--glibc-default", action="store_true",
                        help="keep glibc's dynamic mmap threshold in the tiled runs (RSS then "
                        "also shows heap fragmentation from torch's freed activations)")
    tiling.add_argument("--skip-tiling", action="store_true")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "detect_speed.md")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(tiled_child(args.child, args.tile, args.overlap, args.score)))
        return 0
    if args.skip_model_speed and args.skip_tiling:
        ap.error("--skip-model-speed and --skip-tiling leave nothing to run")
    if not args.skip_model_speed and not args.config.is_file():
        ap.error(f"--config {args.config}: no such file")
    if min(args.train_iters, args.infer_images) < 1 or args.warmup < 0:
        ap.error("--train-iters and --infer-images must be >= 1, --warmup >= 0")

    import torch

    torch.set_num_threads(_threads())
    start = time.perf_counter()
    sections = {}
    if not args.skip_model_speed:
        load0 = os.getloadavg()
        print(f"model speed: {args.config}, load average {load0[0]:.1f}", flush=True)
        rows, note = run_model_speed(args)
        run = run_line(load0, os.getloadavg(), _threads())
        sections["model"] = model_section(rows, note, run, args)
        ours, r50 = rows[0], rows[-1]
        print(f"  ratio DAMA/R50: train time "
              f"{ours['train_s']['median'] / r50['train_s']['median']:.2f}x, inference "
              f"throughput {r50['infer_s']['median'] / ours['infer_s']['median']:.2f}x; "
              f"load average now {os.getloadavg()[0]:.1f}", flush=True)
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
