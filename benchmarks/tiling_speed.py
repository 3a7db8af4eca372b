"""Batched tiled inference: windows per second for ``--batch`` 1 vs 2 / 4 / 8, image-level
seconds per megapixel for several image sizes, peak memory, and read-ahead workers.

Model: ``--config`` (default the CPU demo detector
``configs/quick_schedules/mask_rcnn_dama_vit_demo_cpu.yaml``: mini ViT 128 wide, 4
blocks, slim heads) with random weights, 7-channel synthetic uint16 cells, fp32 (or
``--amp``), ``--threads`` torch threads, ``--max-dets`` detections per window (random
weights score nearly every proposal alike, so the cap sets the mask head's work).

Part 1, windows/s (in this process): ``--windows`` windows of ``--tile`` px predicted
with ``MaskRCNNTilePredictor.predict_batch`` at each batch size; the batch sizes take
turns, one pass each per round (load from other jobs falls on all alike), one untimed
round first, median of ``--rounds``. Each batch size's detections are checked equal, bit
for bit, to batch 1's, and the table says whether the batched encoder passed its
bit-identity check (else its windows ran one by one). For reference, the whole model
on N windows in one ``model.inference`` call (heads batched too: not bit-identical) is
timed beside it.

Part 2, image level (one subprocess per size, so memory peaks do not mix): tiled
prediction (``dama_det.inference.predict_images.predict_one``) of one image per ``--sizes``
at ``--batch-image``: wall s, s/Mpx (constant when time is linear in the area), peak
RSS growth during the prediction (flat when memory does not grow with the image beyond
its label image).

Part 3, reading ahead: ``predict_and_write`` on ``--images`` zlib OME-TIFFs of
``--image-size`` px with ``--workers`` 0 vs 1 (s/image).

Usage: ``python benchmarks/tiling_speed.py [--windows 16] [--sizes 512 1024 2048]
[--out FILE]``; prints the figures and ratios and writes them as markdown to ``--out``
(default ``benchmarks/results/tiling_speed.md``, which ``collect_results.py`` puts into
BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from collect_results import publish
from detect_speed_tiling import RssSampler, synthetic_large_image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "quick_schedules" / "mask_rcnn_dama_vit_demo_cpu.yaml"


def build_predictor(args):
    """``MaskRCNNTilePredictor`` of ``args.config`` with random weights (seed 0), on CPU."""
    import torch

    from dama_det import get_dama_cfg
    from dama_det.inference.predictor import MaskRCNNTilePredictor

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_dama_cfg()
    cfg.merge_from_file(str(args.config))
    cfg.TEST.DETECTIONS_PER_IMAGE = args.max_dets
    return MaskRCNNTilePredictor.from_config(cfg, None, device="cpu", amp=args.amp,
                                             score_thresh=args.score, tile_size=args.tile)


def scaled_windows(n: int, tile: int) -> list[np.ndarray]:
    """``n`` float32 ``(7, tile, tile)`` windows cut from one synthetic image (0-1)."""
    side = int(np.ceil(np.sqrt(n)))
    image = synthetic_large_image(side * tile).astype(np.float32) / 65535
    return [np.ascontiguousarray(image[:, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile])
            for r in range(side) for c in range(side)][:n]


def _same(a, b) -> bool:
    return all(len(x) == len(y) and all(
        p.box == q.box and p.score == q.score and np.array_equal(p.mask, q.mask)
        for p, q in zip(x, y)) for x, y in zip(a, b))


def windows_per_second(args) -> tuple[list[dict], int]:
    """Part 1: rows ``{batch, wps, wps_full_model, identical, encoder_batched}``."""
    import torch

    pred = build_predictor(args)
    windows = scaled_windows(args.windows, args.tile)
    inputs = [{"image": torch.from_numpy(w), "height": args.tile, "width": args.tile}
              for w in windows]

    def ours(b: int) -> list:
        out = []
        for i in range(0, len(windows), b):
            out += pred.predict_batch(windows[i:i + b])
        return out

    def full_model(b: int) -> None:
        with torch.inference_mode():
            for i in range(0, len(inputs), b):
                pred.model.inference(inputs[i:i + b], do_postprocess=False)

    runs = {("ours", b): (lambda b=b: ours(b)) for b in args.batches}
    runs.update({("full", b): (lambda b=b: full_model(b)) for b in args.batches if b > 1})
    reference = ours(1)
    identical = {b: _same(reference, ours(b)) for b in args.batches}  # also the warm-up
    encoder_batched = {}
    for (kind, b), fn in runs.items():
        before = pred.batcher.windows_from_batch
        fn()
        encoder_batched[b] = encoder_batched.get(b, False) or \
            pred.batcher.windows_from_batch > before
    seconds: dict = {k: [] for k in runs}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            seconds[key].append(time.perf_counter() - t0)
    rows = []
    for b in args.batches:
        full = seconds.get(("full", b))
        rows.append({
            "batch": b, "wps": len(windows) / statistics.median(seconds[("ours", b)]),
            "wps_full_model": len(windows) / statistics.median(full) if full else None,
            "identical": identical[b], "encoder_batched": encoder_batched[b],
        })
    return rows, sum(len(d) for d in reference) // len(windows)


def image_child(args) -> dict:
    """Part 2, in a subprocess: time and peak memory of one tiled prediction."""
    from dama_det.inference.predict_images import PredictOptions, predict_one
    from dama_det.inference.tiling import make_tile_grid

    pred = build_predictor(args)
    size = args.child
    image = synthetic_large_image(size)
    opts = PredictOptions(num_channels=7, tile_size=args.tile, overlap=args.overlap,
                          batch_size=args.batch_image, progress=False)
    warm = image[:, :2 * args.tile, :2 * args.tile]  # several windows: checks the batch shape
    predict_one(warm, np.dtype(np.uint16), pred, opts)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        labels, dets = predict_one(image, np.dtype(np.uint16), pred, opts)
        seconds = time.perf_counter() - t0
    return {"size": size, "windows": len(make_tile_grid(size, size, args.tile, args.overlap)),
            "instances": len(dets), "seconds": seconds, "s_per_mpx": seconds / (size * size / 1e6),
            "rss_growth_mb": (rss.peak - rss.start_rss) / 2**20,
            "image_mb": image.nbytes / 2**20, "labels_mb": labels.nbytes / 2**20}


def image_level(args) -> list[dict]:
    """Part 2: one child process per size."""
    rows = []
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # as detect_speed.py part 2
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(size), *_model_argv(args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"child for {size} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def _model_argv(args) -> list[str]:
    return ["--config", str(args.config), "--tile", str(args.tile), "--overlap",
            str(args.overlap), "--score", str(args.score), "--max-dets", str(args.max_dets),
            "--amp", args.amp, "--threads",
            str(args.threads), "--batch-image", str(args.batch_image)]


def read_ahead(args) -> dict[int, float]:
    """Part 3: seconds per image of ``predict_and_write`` with 0 and 1 reader workers."""
    from dama_det.data.tiff_io import write_ome_tiff
    from dama_det.inference.inputs import collect_inputs
    from dama_det.inference.predict_images import PredictOptions, predict_and_write

    pred = build_predictor(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        for k in range(args.images):
            write_ome_tiff(folder / f"img{k:02d}.ome.tif",
                           synthetic_large_image(args.image_size, seed=k))
        inputs = collect_inputs([folder], expected_channels=7)
        seconds = {}
        for workers in (0, 1, 0, 1):  # the first pass of each warms up
            opts = PredictOptions(num_channels=7, tile_size=args.tile, overlap=args.overlap,
                                  batch_size=args.batch_image, workers=workers,
                                  progress=False)
            t0 = time.perf_counter()
            predict_and_write(inputs, pred, Path(tmp) / f"out{workers}", opts)
            seconds[workers] = (time.perf_counter() - t0) / args.images
    return seconds


def report(args, windows_rows, dets, image_rows, ahead, load0, load1) -> str:
    """The markdown section (also printed)."""
    cmd = " ".join(["python benchmarks/tiling_speed.py", *sys.argv[1:]])
    lines = [
        f"## Batched tiled inference (`{Path(args.config).name}`, random weights, "
        f"{args.tile} px windows, amp {args.amp})", "",
        f"Run: `{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.machine()}, {os.cpu_count()} cores visible, {args.threads} torch threads; "
        f"load average (1 min) {load0:.1f} before, {load1:.1f} after.", "",
    ]
    if windows_rows:
        base = windows_rows[0]["wps"]
        lines += [f"Windows per second, {args.windows} windows, median of {args.rounds} rounds "
                  f"({dets} detections per window, at most {args.max_dets}):", "",
                  "| batch | windows/s | vs batch 1 | identical to batch 1 | encoder batched "
                  "| whole model batched (not bit-identical) | vs batch 1 |",
                  "|---|---|---|---|---|---|---|"]
        for r in windows_rows:
            full = r["wps_full_model"]
            lines.append(
                f"| {r['batch']} | {r['wps']:.2f} | {r['wps'] / base:.2f}x | "
                f"{'yes' if r['identical'] else 'NO'} | "
                f"{'-' if r['batch'] == 1 else 'yes' if r['encoder_batched'] else 'no'} "
                f"| {f'{full:.2f}' if full else '-'} | {f'{full / base:.2f}x' if full else '-'} |")
        lines.append("")
    if image_rows:
        lines += [f"Image level, batch {args.batch_image}, overlap {args.overlap}:", "",
                  "| size | windows | instances | wall s | s/Mpx | peak RSS growth (MB) "
                  "| input image (MB) | label image (MB) |", "|---|---|---|---|---|---|---|---|"]
        for r in image_rows:
            lines.append(f"| {r['size']}^2 | {r['windows']} | {r['instances']} | "
                         f"{r['seconds']:.1f} | {r['s_per_mpx']:.2f} | {r['rss_growth_mb']:.0f} | "
                         f"{r['image_mb']:.0f} | {r['labels_mb']:.0f} |")
        a, b = image_rows[0], image_rows[-1]
        lines += ["", f"From {a['size']}^2 to {b['size']}^2 the area grows "
                  f"{(b['size'] / a['size']) ** 2:.1f}x, "
                  f"the windows {b['windows'] / a['windows']:.1f}x, "
                  f"the wall time {b['seconds'] / a['seconds']:.1f}x; peak RSS growth "
                  f"{a['rss_growth_mb']:.0f} -> {b['rss_growth_mb']:.0f} MB.", ""]
    if ahead:
        lines += [f"Reading ahead: `predict_and_write` on {args.images} OME-TIFFs of "
                  f"{args.image_size}^2: {ahead[0]:.2f} s/image with `--workers 0`, "
                  f"{ahead[1]:.2f} s/image with `--workers 1` ({ahead[0] / ahead[1]:.2f}x).", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="detector config")
    ap.add_argument("--tile", type=int, default=256, help="window side (px)")
    ap.add_argument("--overlap", type=int, default=64, help="window overlap (px)")
    ap.add_argument("--score", type=float, default=0.05, help="detection score threshold")
    ap.add_argument("--max-dets", type=int, default=100,
                    help="detections per window at most (TEST.DETECTIONS_PER_IMAGE); random "
                    "weights score nearly every proposal ~0.5, so windows get this many")
    ap.add_argument("--amp", default="off", choices=["off", "bf16", "auto"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    part = ap.add_argument_group("part 1: windows/s")
    part.add_argument("--windows", type=int, default=16, help="windows per pass")
    part.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    part.add_argument("--rounds", type=int, default=3, help="timed passes per batch size")
    part = ap.add_argument_group("part 2: image level")
    part.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    part.add_argument("--batch-image", type=int, default=4, help="--batch of parts 2 and 3")
    part = ap.add_argument_group("part 3: reading ahead")
    part.add_argument("--images", type=int, default=6)
    part.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--skip", nargs="+", default=[], choices=["windows", "images", "workers"],
                    help="parts not to run")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tiling_speed.md")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(image_child(args)))
        return 0
    if args.batches[0] != 1:
        ap.error("--batches must start with 1 (the reference)")
    load0 = os.getloadavg()[0]
    windows_rows, dets = windows_per_second(args) if "windows" not in args.skip else ([], 0)
    image_rows = image_level(args) if "images" not in args.skip else []
    ahead = read_ahead(args) if "workers" not in args.skip else {}
    text = report(args, windows_rows, dets, image_rows, ahead, load0, os.getloadavg()[0])
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
