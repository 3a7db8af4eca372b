"""bf16 autocast vs fp32 in tiled prediction on CPU: mask AP parity and speed.

For each trained detector given (``--weights``, e.g. the three seeds of one compare
method), ``dama-det predict`` runs on ``--gt``'s images twice, ``--amp off`` (fp32) and
``--amp bf16``, each in its own subprocess (wall time includes start-up and reading),
at score >= 0.05; ``dama-det eval`` then scores both against ``--gt`` in one call. The
modes take turns per detector (fp32 first), so load from other jobs falls on both.
Printed and written as markdown to ``--out`` (default
``benchmarks/results/amp_parity.md``, which ``collect_results.py`` puts into
BENCHMARKS.md): per detector mask AP, box AP and wall seconds of both modes; the mean
± std of the paired AP differences and the time ratio.

This is the measurement behind ``--amp auto`` picking bf16 for prediction on CPUs with
native bf16 (``dama_det.utils.device.cpu_has_native_bf16``).

Usage: ``python benchmarks/amp_parity.py --gt val.json --weights s0/model_final.pth
s1/model_final.pth s2/model_final.pth [--work DIR] [--threads 1]``
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collect_results import publish

REPO = Path(__file__).resolve().parents[1]
MODES = ("off", "bf16")


def run_cli(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``dama-det ARGV`` in a subprocess; returns its wall and CPU (user + system)
    seconds. CPU time is the figure that other jobs on shared cores disturb least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dama_det", *argv], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"dama-det {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(gt: Path, weights: Path, work: Path, env: dict[str, str]) -> dict:
    """Predict ``gt``'s images with ``weights`` in both modes and score them."""
    row: dict = {"weights": str(weights)}
    results = []
    for mode in MODES:
        out = work / mode
        argv = ["predict", str(gt), "--weights", str(weights), "--out", str(out),
                "--score-thresh", "0.05", "--amp", mode, "--no-overlay", "--quiet", "--overwrite"]
        row[f"{mode}_s"], row[f"{mode}_cpu"] = run_cli(argv, env)
        results.append(f"{mode}={out / 'predictions.json'}")
    run_cli(["eval", "--gt", str(gt), "--out", str(work / "eval"), "--no-figures",
             "--results", *results], env)
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    for mode in MODES:
        row[f"{mode}_mask"] = 100 * metrics[mode]["segm"]["AP"]
        row[f"{mode}_box"] = 100 * metrics[mode]["bbox"]["AP"]
    return row


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):+.2f} ± {statistics.pstdev(values):.2f}"


def to_markdown(rows: list[dict], args, load: tuple[float, float]) -> str:
    lines = [
        "## Mixed precision by default: bf16 autocast in CPU prediction",
        "",
        f"`python benchmarks/amp_parity.py {' '.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f"; {platform.machine()}, {os.cpu_count()} cores visible, {args.threads} torch "
        f"thread(s); load average {load[0]:.1f} before / {load[1]:.1f} after. Ground truth "
        f"`{args.gt}` ({args.gt_name}); one `dama-det predict` subprocess per mode and "
        "detector (wall time includes start-up and reading), score >= 0.05, then "
        "`dama-det eval`.",
        "",
        "| detector | mask AP fp32 | mask AP bf16 | box AP fp32 | box AP bf16 | wall s fp32 | "
        "wall s bf16 | CPU s fp32 | CPU s bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['name']}` | {r['off_mask']:.2f} | {r['bf16_mask']:.2f} | "
                     f"{r['off_box']:.2f} | {r['bf16_box']:.2f} | {r['off_s']:.1f} | "
                     f"{r['bf16_s']:.1f} | {r['off_cpu']:.1f} | {r['bf16_cpu']:.1f} |")
    d_mask = [r["bf16_mask"] - r["off_mask"] for r in rows]
    d_box = [r["bf16_box"] - r["off_box"] for r in rows]
    ratio = statistics.fmean(r["off_s"] / r["bf16_s"] for r in rows)
    cpu_ratio = statistics.fmean(r["off_cpu"] / r["bf16_cpu"] for r in rows)
    lines += ["", f"bf16 - fp32 (paired, mean ± std over {len(rows)} detectors): mask AP "
              f"{mean_std(d_mask)}, box AP {mean_std(d_box)}; bf16 is {ratio:.2f}x as fast in "
              f"wall time and needs 1/{cpu_ratio:.2f} of the CPU time (whole command, "
              "start-up and reading included)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", type=Path, required=True, help="COCO json whose images to predict")
    p.add_argument("--gt-name", default="DSB2018 val, 80 images",
                   help="how the table names the ground truth")
    p.add_argument("--weights", type=Path, nargs="+", required=True,
                   help="trained detectors (model_final.pth of `dama-det train`)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per subprocess")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "amp_parity.md")
    p.add_argument("--notes", type=Path, default=REPO / "benchmarks" / "amp_notes.md",
                   help="hand-written text appended after the table (the policy it supports)")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    load0 = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for i, weights in enumerate(args.weights):
            row = measure(args.gt, weights, work / f"d{i}", env)
            row["name"] = "/".join(weights.parts[-4:-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    text = to_markdown(rows, args, (load0, os.getloadavg()[0]))
    if args.notes and args.notes.is_file():
        text += "\n" + args.notes.read_text()
    publish(text, args.out)


if __name__ == "__main__":
    main()
