"""Detection speed on CPU: DAMA-ViT Mask R-CNN (tiny config) beside Detectron2's stock
R50-FPN Mask R-CNN, and tiled prediction time / peak memory versus image size.

Part 1 (in this process): training seconds per iteration (batch 2, AdamW, synthetic
instances) and inference images per second, both at 256 x 256 input: the tiny config
(``configs/quick_schedules/mask_rcnn_dama_vit_instant_test.yaml``, 7 channels) and
model_zoo ``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml`` (3 channels, random
weights, one class). Both run with random weights, so the heads see about as many
boxes and masks.

Part 2 (one subprocess per size, so peaks do not mix): ``dama_det.inference`` tiled
prediction of synthetic 7-channel uint16 images of 1024^2, 2048^2 and 4096^2 pixels
with the tiny model: wall time, time per megapixel, peak RSS growth during the
prediction (``resource.getrusage`` max RSS after minus before) and the peak of
Python/numpy allocations (``tracemalloc``). Time should grow with the area and memory
stay nearly flat (the label image is the only full-size array).

Usage: ``python benchmarks/detect_speed.py [--sizes 1024 2048 4096] [--tile 512]``;
writes ``benchmarks/results/detect_speed.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "quick_schedules" / "mask_rcnn_dama_vit_instant_test.yaml"
R50 = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"
SIZE = 256


def _threads() -> int:
    return int(os.environ.get("BENCH_THREADS", "2"))


def tiny_cfg():
    """The tiny DAMA-ViT config (7 channels) on CPU."""
    from dama_det import get_dama_cfg

    cfg = get_dama_cfg()
    cfg.merge_from_file(str(TINY))
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


def synthetic_batch(channels: int, n_images: int = 2, n_cells: int = 30, seed: int = 0):
    """Model inputs with ground truth: random disks as instances.

    Returns:
        list of dicts ``{"image": (C, 256, 256) float32, "instances": Instances}``.
    """
    import torch
    from detectron2.structures import BitMasks, Instances

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    batch = []
    for _ in range(n_images):
        image = rng.random((channels, SIZE, SIZE), dtype=np.float32) * 0.2
        masks = []
        for _ in range(n_cells):
            cy, cx, r = rng.uniform(10, SIZE - 10), rng.uniform(10, SIZE - 10), rng.uniform(4, 10)
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            image[:, m] += 0.6
            masks.append(m)
        inst = Instances((SIZE, SIZE))
        bm = BitMasks(torch.from_numpy(np.stack(masks)))
        inst.gt_masks = bm
        inst.gt_boxes = bm.get_bounding_boxes()
        inst.gt_classes = torch.zeros(len(masks), dtype=torch.int64)
        batch.append({"image": torch.from_numpy(image), "instances": inst,
                      "height": SIZE, "width": SIZE})
    return batch


def model_speed(cfg, channels: int, train_iters: int, infer_images: int) -> dict:
    """Training s/iter (batch 2) and inference images/s of the model of ``cfg``."""
    import torch
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = synthetic_batch(channels)

    def step():
        losses = model(batch)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    with EventStorage(0):  # the losses log to an event storage
        step()  # warm-up
        t0 = time.perf_counter()
        for _ in range(train_iters):
            step()
        train_s = (time.perf_counter() - t0) / train_iters

    model.eval()
    inputs = [{"image": b["image"], "height": SIZE, "width": SIZE} for b in batch]
    with torch.inference_mode():
        model(inputs[:1])  # warm-up
        t0 = time.perf_counter()
        for i in range(infer_images):
            out = model([inputs[i % len(inputs)]])
        infer_s = (time.perf_counter() - t0) / infer_images
    return {"params_M": params / 1e6, "train_s_per_iter": train_s,
            "infer_img_per_s": 1.0 / infer_s, "dets_last": len(out[0]["instances"])}


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
    pred = MaskRCNNTilePredictor.from_config(tiny_cfg(), None, device="cpu", amp="off",
                                             score_thresh=score, tile_size=tile)
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


# ------------------------------------------------------------------------- report


def conditions() -> str:
    load = os.getloadavg()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"{_threads()} torch threads, load average {load[0]:.1f} at start "
            f"(cores shared with other jobs: timings are noisy and pessimistic)")


def write_report(path: Path, cond: str, speed: dict, tiled: list[dict], args) -> None:
    d, r = speed["dama"], speed["r50"]
    lines = [
        "# Detection speed (CPU)",
        "",
        f"Run: `python benchmarks/detect_speed.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cond}.",
        "",
        f"## Model speed at {SIZE} x {SIZE} (random weights, batch 2 training, AdamW)",
        "",
        "| model | channels | params (M) | train s/iter | inference img/s |",
        "|---|---|---|---|---|",
        f"| DAMA-ViT tiny (instant-test config) | 7 | {d['params_M']:.1f} | {d['train_s_per_iter']:.2f} | {d['infer_img_per_s']:.2f} |",
        f"| Detectron2 R50-FPN Mask R-CNN 1x | 3 | {r['params_M']:.1f} | {r['train_s_per_iter']:.2f} | {r['infer_img_per_s']:.2f} |",
        "",
        f"Ratio DAMA-tiny / R50-FPN: training time {d['train_s_per_iter'] / r['train_s_per_iter']:.2f}x, "
        f"inference throughput {d['infer_img_per_s'] / r['infer_img_per_s']:.2f}x.",
        "",
        f"## Tiled prediction vs image size (tiny model, tile {args.tile}, overlap {args.overlap}, "
        f"score >= {args.score}, 7-channel uint16, batch 1)",
        "",
        ("glibc default malloc settings." if args.glibc_default else
         "Children run with `MALLOC_MMAP_THRESHOLD_=131072` (fixed glibc mmap threshold); "
         "with glibc's dynamic threshold (`--glibc-default`) the RSS also grows with the "
         "number of windows through heap fragmentation of torch's freed activations."),
        "",
        "| size | tiles | instances | wall s | wall s/Mpx | s/tile | CPU s | CPU s/Mpx | "
        "peak RSS growth (MB) | max-RSS delta (MB) | tracemalloc peak (MB) | input image (MB) | label image (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tiled:
        lines.append(
            f"| {t['size']}^2 | {t['tiles']} | {t['instances']} | {t['seconds']:.1f} | "
            f"{t['s_per_mpx']:.1f} | {t['s_per_tile']:.2f} | {t['cpu_seconds']:.1f} | "
            f"{t['cpu_s_per_mpx']:.1f} | {t['rss_growth_mb']:.0f} | {t['maxrss_delta_mb']:.0f} | "
            f"{t['tracemalloc_peak_mb']:.0f} | {t['image_mb']:.0f} | {t['labels_mb']:.0f} |")
    if len(tiled) > 1:
        a, b = tiled[0], tiled[-1]
        lines += ["", f"From {a['size']}^2 to {b['size']}^2 the area grows "
                  f"{(b['size'] / a['size']) ** 2:.0f}x and the number of windows "
                  f"{b['tiles'] / a['tiles']:.1f}x; wall time {b['seconds'] / a['seconds']:.1f}x, "
                  f"CPU time {b['cpu_seconds'] / a['cpu_seconds']:.1f}x; peak RSS growth "
                  f"{a['rss_growth_mb']:.0f} -> {b['rss_growth_mb']:.0f} MB."]
    lines += ["", "Peak RSS growth: peak resident memory during the prediction (sampled every "
              "10 ms) minus the resident memory just before it (model and input image already "
              "loaded, one warm-up window run). Max-RSS delta: `getrusage` high-water mark "
              "after minus before (0 when the prediction never exceeds an earlier peak). "
              "tracemalloc counts numpy/Python allocations (label image, crops, tiles), not "
              "torch's. Small images carry more window overlap per pixel (fewer, partly "
              "redundant windows), so s/Mpx is highest there.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--score", type=float, default=0.5)
    ap.add_argument("--train-iters", type=int, default=1)
    ap.add_argument("--infer-images", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "detect_speed.md")
    ap.add_argument("--glibc-default", action="store_true",
                    help="keep glibc's dynamic mmap threshold in the tiled runs (RSS then "
                    "also shows heap fragmentation from torch's freed activations)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(tiled_child(args.child, args.tile, args.overlap, args.score)))
        return 0

    import torch

    torch.set_num_threads(_threads())
    cond = conditions()
    print(f"conditions: {cond}", flush=True)
    start = time.perf_counter()
    speed = {}
    for name, cfg_fn, channels in (("dama", tiny_cfg, 7), ("r50", r50_cfg, 3)):
        speed[name] = s = model_speed(cfg_fn(), channels, args.train_iters, args.infer_images)
        print(f"  {name}: {s['params_M']:.1f} M params, train {s['train_s_per_iter']:.2f} s/iter, "
              f"inference {s['infer_img_per_s']:.2f} img/s", flush=True)
    d, r = speed["dama"], speed["r50"]
    print(f"  ratio DAMA-tiny/R50: train time {d['train_s_per_iter'] / r['train_s_per_iter']:.2f}x, "
          f"inference throughput {d['infer_img_per_s'] / r['infer_img_per_s']:.2f}x", flush=True)
    tiled = run_tiled(args.sizes, args.tile, args.overlap, args.score,
                      fixed_mmap_threshold=not args.glibc_default)
    write_report(args.out, cond, speed, tiled, args)
    print(f"total {time.perf_counter() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
