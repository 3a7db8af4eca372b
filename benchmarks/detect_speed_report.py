"""Markdown of ``benchmarks/detect_speed.py``: one ``## `` section per part (model
speed, tiled prediction), each with the run that produced it; rerunning one part
rewrites its section and keeps the others' text."""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

SIZE = 256
BATCH = 2
REPORT_TITLE = "# Detection speed (CPU)"
MODEL_HEADING = "## Model speed"
# appended to the last TTA line: random weights make every view return its detection cap
TTA_CAP_NOTE = (" With random weights every view returns its detection cap, so the TTA ratios "
                "are those at the cap (the mask head runs on the cap's boxes in all four "
                "views); a trained model that keeps fewer boxes pays closer to the four "
                "forward passes.")
TILING_HEADING = "## Tiled prediction"


def run_line(load_start: tuple, load_end: tuple, threads: int) -> str:
    """The "Run:" line of a section: command, date, machine and load before/after."""
    cmd = " ".join(["python benchmarks/detect_speed.py", *sys.argv[1:]])
    return (f"Run: `{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"{threads} torch threads; load average (1 min) {load_start[0]:.1f} before, "
            f"{load_end[0]:.1f} after (cores shared with other jobs: timings are noisy and "
            f"pessimistic).")


def model_section(rows: list[dict], note: str, run: str, args) -> str:
    """Markdown of the model-speed part."""
    def rng(s: dict) -> str:
        return f"{s['min']:.2f}-{s['max']:.2f}"

    lines = [
        f"{MODEL_HEADING} at {SIZE} x {SIZE} (random weights; training batch {BATCH}, AdamW; "
        f"inference 1 image per call)", "", run, "",
        f"{args.warmup} untimed warm-up round(s), then the median (and range) of "
        f"{args.train_iters} timed training steps and {args.infer_images} timed predictions "
        "per model; the models take turns (one step each per round), so load from other "
        "jobs falls on all of them alike. Wall time unless marked CPU (process CPU time, "
        "less sensitive to other jobs). Same synthetic cells (30 random disks per image) "
        "for every model.", "",
        "| model | precision | channels | params (M) | train s/iter (median) | range | "
        "train CPU s/iter | inference img/s (median) | s/img range | CPU s/img | "
        "dets/img (cap) |"
        + (f" img/s at <= {args.equal_dets} dets | s/img range | dets/img |"
           if args.equal_dets else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|"
        + ("---|---|---|" if args.equal_dets else ""),
    ]
    for r in rows:
        line = (f"| {r['label']} | {r['precision']} | {r['channels']} | {r['params_M']:.1f} | "
                f"{r['train_s']['median']:.2f} | {rng(r['train_s'])} | "
                f"{r['train_cpu_s']['median']:.2f} | "
                f"{1 / r['infer_s']['median']:.2f} | {rng(r['infer_s'])} | "
                f"{r['infer_cpu_s']['median']:.2f} | "
                f"{r['infer_dets']:.0f} ({r['max_dets']}) |")
        if "infer_equal_s" in r:
            line += (f" {1 / r['infer_equal_s']['median']:.2f} | {rng(r['infer_equal_s'])} | "
                     f"{r['infer_equal_dets']:.0f} |")
        lines.append(line)
    r50 = rows[-1]
    lines.append("")
    for ours in rows[:-1]:
        lines.append(
            f"Ratio {ours['label']} ({ours['precision']}) / R50-FPN: training time "
            f"{ours['train_s']['median'] / r50['train_s']['median']:.2f}x, inference "
            f"throughput {r50['infer_s']['median'] / ours['infer_s']['median']:.2f}x"
            + (f" ({r50['infer_equal_s']['median'] / ours['infer_equal_s']['median']:.2f}x at "
               f"<= {args.equal_dets} detections per image)." if "infer_equal_s" in ours
               else "."))
    fp32 = {r["label"]: r for r in rows[:-1] if r["precision"] == "fp32"}
    for b in rows[:-1]:
        f = fp32.get(b["label"])
        if b["precision"].startswith("bf16") and f is not None:
            lines.append(f"bf16 autocast / fp32 ({b['label']}): training time "
                         f"{b['train_s']['median'] / f['train_s']['median']:.2f}x, inference "
                         f"throughput {f['infer_s']['median'] / b['infer_s']['median']:.2f}x.")
    tta_lines = []
    for r in rows[:-1]:
        if "infer_tta_s" in r:
            tta = r["infer_tta_s"]["median"]
            tta_lines.append(
                f"Flip TTA (`dama-det predict --tta flip`: four views, box vote, masks "
                f"averaged) / plain inference ({r['label']}, {r['precision']}): "
                f"{tta / r['infer_s']['median']:.2f}x the time per image ({1 / tta:.2f} img/s, "
                f"range {rng(r['infer_tta_s'])} s; {r['infer_tta_dets']:.0f} dets/img).")
    if tta_lines:
        tta_lines[-1] += TTA_CAP_NOTE
    lines += tta_lines
    if note:
        lines.append(note)
    lines += ["", "Inputs: 0-1 intensities for ours, the same images x 255 for R50-FPN (its "
              "stock pixel mean/std expect 0-255 values). The R50's frozen BatchNorm "
              "statistics are set from one forward pass of the batch (random weights with "
              "mean 0 / var 1 statistics blow the activations up ~10^3x and the RPN then keeps "
              "only a few proposals, so the heads would skip most of their work). Inference "
              "cost grows with the detections the mask head runs on; with random weights "
              "nearly every proposal scores ~0.5, so each model returns its cap "
              "`TEST.DETECTIONS_PER_IMAGE` (ours 500, for images with hundreds of cells; "
              "detectron2's stock 100)"
              + (f"; the `<= {args.equal_dets}` columns compare at equal output "
                 "(`--equal-dets`)." if args.equal_dets else "."), ""]
    return "\n".join(lines)


def tiling_section(tiled: list[dict], run: str, args) -> str:
    """Markdown of the tiled-prediction part."""
    lines = [
        f"{TILING_HEADING} vs image size (instant-test model, 0.4 M parameters: this part "
        f"measures the tiler's scaling, not the model; tile {args.tile}, overlap "
        f"{args.overlap}, score >= {args.score}, 7-channel uint16, batch 1)", "", run, "",
        ("glibc default malloc settings." if args.glibc_default else
         "Children run with `MALLOC_MMAP_THRESHOLD_=131072` (fixed glibc mmap threshold); "
         "with glibc's dynamic threshold (`--glibc-default`) the RSS also grows with the "
         "number of windows through heap fragmentation of torch's freed activations."),
        "",
        "| size | tiles | instances | wall s | wall s/Mpx | s/tile | CPU s | CPU s/Mpx | "
        "peak RSS growth (MB) | max-RSS delta (MB) | tracemalloc peak (MB) | input image (MB) | "
        "label image (MB) |",
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
    return "\n".join(lines)


def split_sections(text: str) -> dict[str, str]:
    """The ``## `` sections of a report, keyed "model", "tiling" or their heading."""
    sections: dict[str, str] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            key = ("model" if line.startswith(MODEL_HEADING) else
                   "tiling" if line.startswith(TILING_HEADING) else line)
            current = sections.setdefault(key, [])
        if current is not None:
            current.append(line)
    return {k: "\n".join(v).rstrip() + "\n" for k, v in sections.items()}


def merge_report(path: Path, new: dict[str, str]) -> None:
    """Write ``path`` with the ``new`` sections; sections not rerun keep their old text."""
    from dama_det.utils import atomic_write_bytes

    old = path.read_text() if path.exists() else ""
    sections = split_sections(old)
    legacy_run = [ln for ln in old.split("\n## ")[0].splitlines() if ln.startswith("Run:")]
    for key, text in sections.items():  # reports from before per-section run lines
        if key not in new and legacy_run and "\nRun:" not in text:
            heading, _, rest = text.partition("\n")
            sections[key] = f"{heading}\n\n{legacy_run[0]}\n{rest}"
    sections.update({k: v.rstrip() + "\n" for k, v in new.items()})
    order = [k for k in ("model", "tiling") if k in sections]
    order += [k for k in sections if k not in order]
    head = [REPORT_TITLE, "",
            "Written by `benchmarks/detect_speed.py` (see its docstring); each section "
            "names the run that produced it (`--skip-tiling` / `--skip-model-speed` rerun "
            "one part and keep the other's text).", ""]
    text = "\n".join(head) + "\n" + "\n".join(sections[k] for k in order)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
