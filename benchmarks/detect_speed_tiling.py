"""Tiled prediction time and peak memory versus image size, for
``benchmarks/detect_speed.py`` (part 2): one subprocess per size (``detect_speed.py
--child SIZE``) so the memory peaks of different sizes do not mix."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("detect_speed.py")
TILING_CONFIG = REPO / "configs" / "quick_schedules" / "mask_rcnn_dama_vit_instant_test.yaml"


def _threads() -> int:
    return int(os.environ.get("BENCH_THREADS", "2"))


def tiling_cfg():
    """The small instant-test DAMA-ViT config (7 channels) on CPU: the tiler's scaling,
    not the model, is what part 2 measures."""
    from dama_det import get_dama_cfg

    cfg = get_dama_cfg()
    cfg.merge_from_file(str(TILING_CONFIG))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


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
    import tracemalloc

    import torch

    from dama_det.inference.predict_images import PredictOptions, predict_one
    from dama_det.inference.predictor import MaskRCNNTilePredictor
    from dama_det.inference.tiling import make_tile_grid

    torch.set_num_threads(_threads())
    torch.manual_seed(0)
    pred = MaskRCNNTilePredictor.from_config(tiling_cfg(), None, device="cpu",
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
        cmd = [sys.executable, str(SCRIPT), "--child", str(size), "--tile", str(tile),
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
