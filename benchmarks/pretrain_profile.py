"""Where a CPU pretraining step spends its time, and what the fused AdamW kernel saves.

Part 1 (``torch.profiler``): one DAMA step (forward + backward + optimizer) of the
``--size`` ViT at batch ``--batch``, 128 x 128 x 7, under ``--dtype`` autocast, profiled
after warm-up; the table lists the ops with the most self CPU time and the share of the
step spent in matmul-type ops (``aten::mm``/``bmm``/``addmm``/``linear``/``_scaled_dot_product*``
/ ``convolution``) vs the rest (norms, softmax, GELU, casts, the optimizer, copies).

Part 2: the step timed with the loop AdamW (``torch.optim.AdamW``) and with
``dama_det.utils.optim.build_adamw`` (fused kernel) in the same process, the two
taking turns step by step (load from other jobs falls on both alike); median and best
of ``--steps`` steps each, and the optimizer step alone.

Writes ``--out`` (default ``benchmarks/results/pretrain_profile.md``; ``collect_results.py``
puts it into BENCHMARKS.md).

Usage: ``python benchmarks/pretrain_profile.py [--size tiny] [--dtype bf16] [--threads 2]``
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from collect_results import publish

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MATMUL_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::linear", "aten::matmul",
              "aten::_scaled_dot_product", "aten::convolution", "aten::_convolution",
              "aten::mkldnn_convolution", "aten::baddbmm")


def build(size: str, fused: bool):
    """A DAMA pretrainer of ``size`` (seed 0) and its optimizer (fused or loop AdamW)."""
    from timm.optim import param_groups_weight_decay

    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.models_mae import mae_config
    from dama_det.utils.optim import build_adamw

    torch.manual_seed(0)
    model = DAMAPretrainer(mae_config(size, img_size=128, patch_size=16, in_chans=7),
                           MethodConfig(method="dama"))
    groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    opt = (build_adamw(groups, lr=1e-4, betas=(0.9, 0.95)) if fused
           else torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95)))
    return model, opt


def make_step(model, opt, imgs, dtype):
    """Closure running one training step; returns (total s, optimizer-step s)."""
    def step() -> tuple[float, float]:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss, _, _ = model(imgs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mid = time.perf_counter()
        opt.step()
        end = time.perf_counter()
        return end - start, end - mid
    return step


def profile_table(step, top: int) -> tuple[list[tuple[str, float, int]], float, float]:
    """Self CPU ms per op of one profiled step; returns (top rows, matmul ms, total ms)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    rows = [(e.key, e.self_cpu_time_total / 1000, e.count) for e in prof.key_averages()]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    matmul = sum(r[1] for r in rows if r[0].startswith(MATMUL_OPS))
    return rows[:top], matmul, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", help="pretraining model size")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=6, help="timed steps per optimizer")
    p.add_argument("--top", type=int, default=15, help="ops listed in the profile table")
    p.add_argument("--out", type=Path,
                   default=REPO / "benchmarks" / "results" / "pretrain_profile.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None
    imgs = torch.randn(args.batch, 7, 128, 128, generator=torch.Generator().manual_seed(0))
    load0 = os.getloadavg()[0]

    steps = {}
    for fused in (False, True):
        model, opt = build(args.size, fused)
        steps[fused] = make_step(model, opt, imgs, dtype)
        for _ in range(2):
            steps[fused]()  # warm-up (first-call allocations, optimizer state)
    rows, matmul_ms, total_ms = profile_table(steps[True], args.top)
    times = {False: [], True: []}
    for _ in range(args.steps):
        for fused in (False, True):
            times[fused].append(steps[fused]())
    load1 = os.getloadavg()[0]

    def fmt(fused: bool) -> str:
        tot = [t for t, _ in times[fused]]
        optim = [o for _, o in times[fused]]
        return (f"{1000 * statistics.median(tot):.0f} | {1000 * min(tot):.0f} | "
                f"{1000 * statistics.median(optim):.1f} | "
                f"{args.batch / statistics.median(tot):.1f}")

    med = {f: statistics.median(t for t, _ in times[f]) for f in times}
    lines = [
        "## Pretraining step profile (CPU)",
        "",
        f"`python benchmarks/pretrain_profile.py --size {args.size} --batch {args.batch} "
        f"--dtype {args.dtype} --threads {args.threads}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"torch {torch.__version__}, load average {load0:.1f} before / {load1:.1f} after. "
        f"DAMA, 128 x 128 x 7, one profiled step after warm-up (fused AdamW).",
        "",
        f"Self CPU time: matmul-type ops {matmul_ms:.0f} ms of {total_ms:.0f} ms "
        f"({100 * matmul_ms / total_ms:.0f} %); the rest is norms, softmax, GELU, casts, "
        "copies and the optimizer.",
        "",
        "| op | self CPU ms | calls |",
        "|---|---|---|",
        *[f"| `{name}` | {ms:.1f} | {count} |" for name, ms, count in rows],
        "",
        f"AdamW loop vs fused kernel, {args.steps} interleaved steps each:",
        "",
        "| optimizer | step ms (median) | best | optimizer.step() ms (median) | images/s |",
        "|---|---|---|---|---|",
        f"| `torch.optim.AdamW` (loop) | {fmt(False)} |",
        f"| `build_adamw` (fused) | {fmt(True)} |",
        "",
        f"Fused / loop step time: {med[True] / med[False]:.2f}x.",
    ]
    text = "\n".join(lines) + "\n"
    publish(text, args.out)


if __name__ == "__main__":
    main()
