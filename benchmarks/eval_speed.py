"""Speed of the dama_det evaluation report against one plain pycocotools COCOeval run.

Synthetic data: ``--images`` images of 512 x 512 with 300-800 ellipse "cells" each
(ground truth) and perturbed predictions (10 % missed, 10 % extra false positives),
all as compressed RLE. Timed:

(a)  pycocotools ``COCOeval(gt, dt, "segm")``: evaluate + accumulate + summarize, with
     its default maxDets [1, 10, 100] ("plain"), and - with ``--matched-baseline`` -
     with maxDets [1, 10, K] so that it sees every detection, as the report does.
(b)  ``evaluate_report`` + ``write_report(figures=False)``: input checks, one COCOeval
     pass (faster-coco-eval) at the standard and PR IoU thresholds, AP/AR with maxDets
     (1, 10, 100, K), PR curves, error breakdown, cell matching metrics at 5 IoU
     thresholds, metrics.json / report.json / pr_curves.npz / summary.md.
(b') the same with figures (PNG + PDF).

Usage: ``python benchmarks/eval_speed.py [--images 100] [--out benchmarks/results/eval_speed.md]``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _pycocotools_run(gt: dict, dets: list, max_dets: list[int]) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = copy.deepcopy(gt), copy.deepcopy(dets)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.maxDets = max_dets
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - start, float(ev.stats[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--min-instances", type=int, default=300)
    parser.add_argument("--max-instances", type=int, default=800)
    parser.add_argument("--max-dets", type=int, default=1000, help="K, the largest maxDets")
    parser.add_argument("--matched-baseline", action="store_true",
                        help="also time pycocotools with maxDets [1, 10, K] (slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "eval_speed.md")
    args = parser.parse_args(argv)

    from dama_det.evaluation.report import evaluate_report, write_report
    from dama_det.evaluation.synthetic import make_synthetic_case
    from dama_det.utils.io import atomic_write_bytes

    t0 = time.perf_counter()
    gt, dets = make_synthetic_case(args.images, (args.min_instances, args.max_instances),
                                   size=(512, 512), radius=(3.0, 14.0), seed=args.seed)
    masks_only = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
    n_gt, n_dt = len(gt["annotations"]), len(dets)
    print(f"data: {args.images} images, {n_gt} cells, {n_dt} detections "
          f"({time.perf_counter() - t0:.1f} s to generate)", flush=True)

    rows = []
    t_plain, ap50_plain = _pycocotools_run(gt, masks_only, [1, 10, 100])
    rows.append(("(a) pycocotools COCOeval segm, maxDets [1, 10, 100] (plain)", t_plain))
    print(f"(a) pycocotools plain: {t_plain:.1f} s (AP50 {ap50_plain:.4f})", flush=True)
    t_matched = None
    if args.matched_baseline:
        t_matched, _ = _pycocotools_run(gt, masks_only, [1, 10, args.max_dets])
        rows.append((f"(a') pycocotools COCOeval segm, maxDets [1, 10, {args.max_dets}]",
                     t_matched))
        print(f"(a') pycocotools matched maxDets: {t_matched:.1f} s", flush=True)

    max_dets = (1, 10, 100, args.max_dets)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = evaluate_report(gt, {"model": masks_only}, max_dets=max_dets, progress=False)
        write_report(report, Path(tmp) / "nofig", figures=False)
        t_report = time.perf_counter() - start
        rows.append(("(b) dama_det report, segm + cell metrics, no figures", t_report))
        print(f"(b) report without figures: {t_report:.1f} s", flush=True)
        start = time.perf_counter()
        write_report(report, Path(tmp) / "fig", figures=True)
        t_fig = time.perf_counter() - start
        rows.append(("(b') figures only (PNG + PDF, 2 figures x 2 formats + cell figure)", t_fig))
        rows.append(("(b) + (b') report with figures", t_report + t_fig))
        print(f"(b') figures: {t_fig:.1f} s", flush=True)
        start = time.perf_counter()
        evaluate_report(gt, {"model": dets}, max_dets=max_dets, progress=False)
        t_both = time.perf_counter() - start
        rows.append(("(c) dama_det report, bbox + segm + cell metrics, no files", t_both))
        print(f"(c) report bbox + segm: {t_both:.1f} s", flush=True)
    stats = report.metrics()["model"]["segm"]

    lines = [
        "# Evaluation speed (benchmarks/eval_speed.py)", "",
        f"Data: {args.images} synthetic images of 512 x 512, {args.min_instances}-"
        f"{args.max_instances} cells each ({n_gt} ground-truth cells, {n_dt} detections, "
        f"compressed RLE); seed {args.seed}.",
        f"Conditions: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        "shared with other jobs (timings noisy), Python "
        f"{sys.version.split()[0]}, numpy {np.__version__}.", "",
        "| run | seconds | ratio to (a) |", "|---|---|---|",
    ]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.1f} | {seconds / t_plain:.2f} |")
    if t_matched:
        lines += ["", "Against the matched-maxDets baseline (a'): "
                  f"report {t_report / t_matched:.3f}x, "
                  f"with figures {(t_report + t_fig) / t_matched:.3f}x."]
    lines += ["", f"Target (b) <= 2 x (a): {'met' if t_report <= 2 * t_plain else 'NOT met'} "
              f"({t_report / t_plain:.2f}x); with figures {(t_report + t_fig) / t_plain:.2f}x.",
              f"Report values: segm AP {stats['AP']:.4f}, AP50 {stats['AP50']:.4f} "
              f"(maxDets {args.max_dets}); pycocotools plain AP50 {ap50_plain:.4f} "
              "(maxDets 100, so lower recall).", ""]
    text = "\n".join(lines)
    atomic_write_bytes(args.out, text.encode("utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
